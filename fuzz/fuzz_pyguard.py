#!/usr/bin/env python
"""Coverage-guided fuzzing of pyguard with atheris (libFuzzer for Python).

One harness, four targets chosen by the first input byte:
  0 ops      an array of any dtype/shape/strides and any parameters into every op of pyguard.ops
  1 feed     any feed (names, dtypes, shapes, values) into guarded sessions (monitor, reject, purify, plain)
  2 profile  any bytes as a profile file (GuardProfile.load) and as a calibration summary
  3 model    any bytes as a model, with and without a profile pinning the real model's sha256

Only the documented exceptions are allowed (see tests/test_properties.py); anything else, or a crash of the
native core, is a finding. Python code of pyguard is coverage-instrumented (atheris.instrument_imports);
the C++ core is not (that needs a libFuzzer-instrumented build of the extension), so its paths count only
through the Python branches that reach them.

Usage (libFuzzer flags): python fuzz/fuzz_pyguard.py -runs=20000 [-max_total_time=60] [CORPUS_DIR | FILE...]
Without a corpus directory, build/fuzz-corpus is created with one seed per target; files re-run one input
each (a crash reproducer).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile

import atheris
import numpy as np
import onnxruntime  # noqa: F401  (imported before instrumentation: only pyguard is instrumented)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
# The installed pyguard when there is one (the checkout's pyguard/ lacks _core after a plain `pip install .`);
# otherwise the checkout, built in place by tools/dev_build.sh.
if importlib.util.find_spec("pyguard") is None:
    sys.path.insert(0, ROOT)

with atheris.instrument_imports(include=["pyguard"]):
    import pyguard
    from pyguard import ops
    from pyguard.federated import CalibrationSummary

from models import classifier  # noqa: E402  (tests/models.py: a small ONNX classifier)

DTYPES = [np.float32, np.uint8, np.float64, np.int32, np.int8, np.bool_, np.float16, np.int64]
LAYOUTS = ["NCHW", "NHWC", "CHW", "HWC", "HW", "NHW", "", "NCWH"]
ISAS = ["auto", "serial", "avx2", "avx512", "neon", "x"]
SESSION_ERRORS = (pyguard.InputError, pyguard.ConfigError, pyguard.AdversarialInputError)

MODEL = classifier(size=8, outputs=("probs",))
_rng = np.random.default_rng(0)
PROFILE = pyguard.calibrate(MODEL, _rng.random((24, 3, 8, 8), dtype=np.float32),
                            squeezers=("bit_depth:3", "median:2"))
SESSIONS = [pyguard.InferenceSession(MODEL, profile=PROFILE, action=action)
            for action in ("monitor", "reject", "purify")]
SESSIONS.append(pyguard.InferenceSession(MODEL))
PROFILE_PATH = os.path.join(tempfile.mkdtemp(prefix="pyguard-fuzz-"), "profile.json")


def _array(fdp: atheris.FuzzedDataProvider) -> np.ndarray:
    dtype = np.dtype(DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)])
    ndim = fdp.ConsumeIntInRange(0, 5)
    shape = tuple(fdp.ConsumeIntInRange(0, 9) for _ in range(ndim))
    count = int(np.prod(shape, dtype=np.int64))
    raw = fdp.ConsumeBytes(count * dtype.itemsize)
    raw += bytes(count * dtype.itemsize - len(raw))
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if arr.ndim >= 2 and fdp.ConsumeBool():
        arr = arr[..., ::-1]  # not C-contiguous
    return arr


def _param(fdp: atheris.FuzzedDataProvider):
    kind = fdp.ConsumeIntInRange(0, 4)
    if kind == 0:
        return fdp.ConsumeIntInRange(-3, 300)
    if kind == 1:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()
    if kind == 2:
        return None
    if kind == 3:
        return fdp.ConsumeUnicodeNoSurrogates(4)
    return _array(fdp)


def fuzz_ops(fdp: atheris.FuzzedDataProvider) -> None:
    x = _array(fdp)
    which = fdp.ConsumeIntInRange(0, 6)
    isa = ISAS[fdp.ConsumeIntInRange(0, len(ISAS) - 1)]
    layout = LAYOUTS[fdp.ConsumeIntInRange(0, len(LAYOUTS) - 1)]
    out = _array(fdp) if fdp.ConsumeBool() else None
    a, b = _param(fdp), _param(fdp)
    try:
        if which == 0:
            ops.bit_depth(x, a, lo=b if not isinstance(b, np.ndarray) else 0.0, out=out, isa=isa)
        elif which == 1:
            ops.median_filter(x, a, layout=layout, out=out, isa=isa)
        elif which == 2:
            ops.sample_checks(x, lo=a, hi=b, grid=fdp.ConsumeIntInRange(-1, 300) or None, isa=isa)
        elif which == 3:
            ops.minmax(x, channel_axis=a if not isinstance(a, np.ndarray) else None, isa=isa)
        elif which == 4:
            ops.range_check(x, a, b, channel_axis=fdp.ConsumeIntInRange(-5, 5) or None, isa=isa)
        elif which == 5:
            ops.clamp(x, a, b, channel_axis=fdp.ConsumeIntInRange(-5, 5) or None, out=out, isa=isa)
        else:
            ops.jpeg(x, a, layout=layout, out=out)
    except (TypeError, ValueError):
        pass


def fuzz_feed(fdp: atheris.FuzzedDataProvider) -> None:
    feed = {}
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        name = "image" if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(6)
        if fdp.ConsumeBool():  # image-shaped: reaches the detector
            n = fdp.ConsumeIntInRange(1, 3)
            raw = fdp.ConsumeBytes(n * 3 * 8 * 8 * 4)
            raw += bytes(n * 3 * 8 * 8 * 4 - len(raw))
            feed[name] = np.frombuffer(raw, dtype=np.float32).reshape(n, 3, 8, 8).copy()
        else:
            feed[name] = _param(fdp)
    names = None if fdp.ConsumeBool() else [fdp.ConsumeUnicodeNoSurrogates(5)]
    for sess in SESSIONS:
        try:
            sess.run(names, feed)
        except SESSION_ERRORS:
            pass


def fuzz_profile(fdp: atheris.FuzzedDataProvider) -> None:
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    with open(PROFILE_PATH, "wb") as f:
        f.write(data)
    try:
        profile = pyguard.GuardProfile.load(PROFILE_PATH)
        profile.validate()
    except pyguard.ProfileError:
        pass
    try:
        CalibrationSummary.from_dict(json.loads(data))
    except (ValueError, RecursionError):  # json's own errors come first (JSONDecodeError is a ValueError)
        pass
    except pyguard.ProfileError:
        pass


def fuzz_model(fdp: atheris.FuzzedDataProvider) -> None:
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        pyguard.InferenceSession(data, profile=PROFILE)
        assert data == MODEL, "a model with another sha256 passed the profile's pin"
    except pyguard.ProfileError:
        pass
    try:
        pyguard.InferenceSession(data)
    except pyguard.ModelError:
        pass


TARGETS = [fuzz_ops, fuzz_feed, fuzz_profile, fuzz_model]


def one_input(data: bytes) -> None:
    if not data:
        return
    fdp = atheris.FuzzedDataProvider(data[1:])
    TARGETS[data[0] % len(TARGETS)](fdp)


def _seed_corpus(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    seeds = {
        "ops": b"\x00" + bytes(range(256)) * 4,
        "feed": b"\x01" + np.random.default_rng(1).random(600, dtype=np.float32).tobytes(),
        "profile": b"\x02" + json.dumps(PROFILE.to_dict()).encode(),
        "model": b"\x03" + MODEL,
    }
    for name, seed in seeds.items():
        with open(os.path.join(directory, f"seed-{name}"), "wb") as f:
            f.write(seed)


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus dir or input files given
        corpus = os.path.join(ROOT, "build", "fuzz-corpus")
        _seed_corpus(corpus)
        argv.append(corpus)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
