"""White-box attacks on a tiny CNN trained here on scikit-learn's 8x8 digits (a few seconds on one thread)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pyguard.eval import whitebox as wb  # noqa: E402

N_ATTACKED = 48


@pytest.fixture(scope="module")
def trained():
    """(model, x, y): an undefended tiny CNN and correctly classified held-out digits in [0, 1]."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    torch.set_num_threads(1)
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[:1000]), torch.from_numpy(y[:1000])
    for _ in range(50):
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    x_held, y_held = x[1000:], y[1000:]
    correct = wb.predict(model, x_held) == y_held
    assert correct.mean() > 0.9, "the test model did not train"
    return model, x_held[correct][:N_ATTACKED], y_held[correct][:N_ATTACKED]


def success_rate(model, x_adv, y) -> float:
    return float((wb.predict(model, x_adv) != y).mean())


def assert_valid(x_adv, x, clip=(0.0, 1.0)):
    assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
    assert np.isfinite(x_adv).all()
    assert x_adv.min() >= clip[0] and x_adv.max() <= clip[1]


def linf(x_adv, x):
    return np.abs(x_adv - x).reshape(len(x), -1).max(1)


def l2(x_adv, x):
    return np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1)


def test_fgsm(trained):
    model, x, y = trained
    x_adv = wb.fgsm(model, x, y, 0.3)
    assert_valid(x_adv, x)
    assert linf(x_adv, x).max() <= 0.3 + 1e-6
    assert success_rate(model, x_adv, y) >= 0.7
    # Larger budgets fool more, and no budget leaves the model's accuracy intact.
    assert success_rate(model, wb.fgsm(model, x, y, 0.05), y) < success_rate(model, x_adv, y)


def test_fgsm_is_one_signed_step(trained):
    model, x, y = trained
    x_adv = wb.fgsm(model, x, y, 0.1, clip=(-1.0, 2.0))  # a box wide enough that nothing is clipped
    step = np.abs(x_adv - x)
    moved = step > 0
    assert moved.mean() > 0.5
    np.testing.assert_allclose(step[moved], 0.1, rtol=1e-5)


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_linf(trained, random_start):
    model, x, y = trained
    x_adv = wb.pgd_linf(model, x, y, 0.2, steps=10, random_start=random_start, seed=3)
    assert_valid(x_adv, x)
    assert linf(x_adv, x).max() <= 0.2 + 1e-6
    assert success_rate(model, x_adv, y) >= 0.9
    assert success_rate(model, x_adv, y) >= success_rate(model, wb.fgsm(model, x, y, 0.2), y)


def test_pgd_linf_seeded(trained):
    model, x, y = trained
    a = wb.pgd_linf(model, x, y, 0.1, steps=3, seed=5)
    np.testing.assert_array_equal(a, wb.pgd_linf(model, x, y, 0.1, steps=3, seed=5))
    assert not np.array_equal(a, wb.pgd_linf(model, x, y, 0.1, steps=3, seed=6))


def test_bim_is_pgd_without_random_start(trained):
    model, x, y = trained
    np.testing.assert_array_equal(wb.bim(model, x, y, 0.1, steps=4),
                                  wb.pgd_linf(model, x, y, 0.1, steps=4, random_start=False, seed=123))


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_l2(trained, random_start):
    model, x, y = trained
    eps = 2.0
    x_adv = wb.pgd_l2(model, x, y, eps, steps=20, random_start=random_start, seed=1)
    assert_valid(x_adv, x)
    assert l2(x_adv, x).max() <= eps * (1 + 1e-5)
    assert success_rate(model, x_adv, y) >= 0.8
    again = wb.pgd_l2(model, x, y, eps, steps=20, random_start=random_start, seed=1)
    np.testing.assert_array_equal(x_adv, again)


@pytest.mark.parametrize("confidence", [0.0, 5.0])
def test_carlini_wagner_l2(trained, confidence):
    model, x, y = trained
    x_adv = wb.carlini_wagner_l2(model, x, y, confidence=confidence, binary_search_steps=4, max_iter=100,
                                 learning_rate=0.05)
    assert_valid(x_adv, x)
    fooled = wb.predict(model, x_adv) != y
    assert fooled.mean() >= 0.9
    with torch.no_grad():
        logits = model(torch.from_numpy(x_adv)).numpy()
    rows = np.arange(len(y))
    others = logits.copy()
    others[rows, y] = -np.inf
    margin = others.max(1) - logits[rows, y]
    assert (margin[fooled] >= confidence - 1e-3).all()
    # Failed samples come back unchanged.
    np.testing.assert_array_equal(x_adv[~fooled], x[~fooled])


def test_carlini_wagner_is_smaller_than_pgd(trained):
    """CW minimizes L2; at a matched success rate it needs far less than a fixed-budget L-inf attack."""
    model, x, y = trained
    cw = wb.carlini_wagner_l2(model, x, y, binary_search_steps=4, max_iter=100, learning_rate=0.05)
    pgd = wb.bim(model, x, y, 0.3, steps=10)
    both = (wb.predict(model, cw) != y) & (wb.predict(model, pgd) != y)
    assert both.mean() > 0.8
    assert np.median(l2(cw, x)[both]) < np.median(l2(pgd, x)[both])


def test_deepfool(trained):
    model, x, y = trained
    x_adv = wb.deepfool(model, x, y)
    assert_valid(x_adv, x)
    assert success_rate(model, x_adv, y) >= 0.9
    # DeepFool looks for a minimal step: its distortions are far below an L-inf 0.3 attack's.
    fooled = wb.predict(model, x_adv) != y
    assert np.median(l2(x_adv, x)[fooled]) < np.median(l2(wb.fgsm(model, x, y, 0.3), x))


def test_deepfool_leaves_misclassified_inputs_unchanged(trained):
    model, x, y = trained
    wrong = (y[:8] + 1) % 10
    np.testing.assert_array_equal(wb.deepfool(model, x[:8], wrong), x[:8])


def test_jsma_targeted(trained):
    model, x, y = trained
    target = (y + 3) % 10
    gamma = 0.3
    x_adv = wb.jsma(model, x, y, target=target, gamma=gamma)
    assert_valid(x_adv, x)
    assert (wb.predict(model, x_adv) == target).mean() >= 0.6
    changed = (x_adv != x).reshape(len(x), -1)
    assert changed.sum(1).max() <= 2 * int(64 * gamma / 2)
    assert (x_adv >= x).all()  # theta > 0 only increases features
    assert np.all(x_adv[x_adv != x] == 1.0)  # theta = 1 saturates them


def test_jsma_decreasing(trained):
    model, x, y = trained
    x_adv = wb.jsma(model, x, y, theta=-1.0, gamma=0.3, seed=2)
    assert_valid(x_adv, x)
    assert (x_adv <= x).all()
    assert success_rate(model, x_adv, y) >= 0.5


def test_jsma_random_targets_seeded_and_chunked(trained):
    model, x, y = trained
    a = wb.jsma(model, x, y, gamma=0.2, seed=4)
    np.testing.assert_array_equal(a, wb.jsma(model, x, y, gamma=0.2, seed=4, chunk=7))
    assert success_rate(model, a, y) >= 0.5


def test_attacks_leave_the_model_untouched(trained):
    model, x, y = trained
    model.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in model.parameters()]
    wb.pgd_linf(model, x[:4], y[:4], 0.1, steps=2)
    wb.carlini_wagner_l2(model, x[:4], y[:4], binary_search_steps=1, max_iter=5)
    wb.deepfool(model, x[:4], y[:4], max_iter=2)
    wb.jsma(model, x[:4], y[:4], gamma=0.05)
    for b, p in zip(before, model.parameters()):
        assert torch.equal(b, p) and p.grad is None


def test_custom_box(trained):
    model, x, y = trained
    x255 = x * 255.0
    x_adv = wb.pgd_linf(model, x255, y, 20.0, steps=3, clip=(0.0, 255.0))
    assert_valid(x_adv, x255, clip=(0.0, 255.0))
    assert linf(x_adv, x255).max() <= 20.0 + 1e-3


@pytest.mark.parametrize("call", [
    lambda m, x, y: wb.fgsm(m, x.astype(np.float64), y, 0.1),
    lambda m, x, y: wb.fgsm(m, x, y[:-1], 0.1),
    lambda m, x, y: wb.fgsm(m, x, y.astype(np.float32), 0.1),
    lambda m, x, y: wb.fgsm(m, x, y, 0.0),
    lambda m, x, y: wb.fgsm(m, x[:0], y[:0], 0.1),
    lambda m, x, y: wb.fgsm(m, x, y, 0.1, clip=(1.0, 0.0)),
    lambda m, x, y: wb.pgd_linf(m, np.full_like(x, np.nan), y, 0.1),
    lambda m, x, y: wb.pgd_l2(m, x, y, 1.0, steps=0),
    lambda m, x, y: wb.carlini_wagner_l2(m, x, y, confidence=-1.0),
    lambda m, x, y: wb.deepfool(m, x, y, overshoot=-0.1),
    lambda m, x, y: wb.jsma(m, x, y, gamma=0.0),
    lambda m, x, y: wb.jsma(m, x, y, theta=0.0),
    lambda m, x, y: wb.jsma(m, x, y, target=np.full_like(y, 10)),
], ids=["f64", "y-len", "y-float", "eps0", "empty", "box", "nan", "steps0", "kappa", "overshoot", "gamma",
        "theta", "target"])
def test_bad_inputs(trained, call):
    model, x, y = trained
    with pytest.raises((TypeError, ValueError)):
        call(model, x, y)


def test_import_pyguard_does_not_import_torch(outside_checkout):
    code = "import sys, pyguard, pyguard.eval, pyguard.data; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=outside_checkout).returncode == 0
