"""Property tests (hypothesis): arbitrary arrays, parameters, feeds, profile files and model bytes never
crash pyguard; they give a result or one of the documented exceptions.

Documented: the ops raise TypeError (wrong type/dtype) or ValueError (bad value/shape); sessions raise
pyguard.InputError / ConfigError (both ValueError) and AdversarialInputError (reject); profile files raise
ProfileError; model bytes raise ModelError (or ProfileError when a profile pins another model).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hardening_helpers import model_and_profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pyguard
from pyguard import ops
from pyguard._validate import LAYOUTS

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
OP_ERRORS = (TypeError, ValueError)

dtypes = st.sampled_from([np.float32, np.uint8, np.float64, np.int32, np.int8, np.bool_, np.float16])
shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6)


@st.composite
def arrays(draw):
    dtype = draw(dtypes)
    arr = draw(hnp.arrays(dtype, draw(shapes)))
    if arr.ndim >= 2 and draw(st.booleans()):
        arr = arr[..., ::-1] if draw(st.booleans()) else np.swapaxes(arr, 0, 1)  # not C-contiguous
    return arr


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-300, 300), st.none(),
                   st.text(max_size=3), st.booleans())
layouts = st.one_of(st.sampled_from(LAYOUTS), st.text(max_size=5), st.none(), st.integers())
isas = st.one_of(st.sampled_from(["auto", "serial", *ops.available_isas(), "avx512", "neon", "bogus"]),
                 st.integers(), st.none())
outs = st.one_of(st.none(), arrays())


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except OP_ERRORS:
        return None


@SETTINGS
@given(x=arrays(), bits=st.one_of(st.integers(-3, 40), floats), lo=floats, hi=floats, out=outs, isa=isas)
def test_bit_depth_any_input(x, bits, lo, hi, out, isa):
    y = _call(ops.bit_depth, x, bits, lo=lo, hi=hi, out=out, isa=isa)
    if y is not None:
        assert y.shape == x.shape and y.dtype == x.dtype
        if x.dtype == np.float32:  # idempotent: already-quantized values stay where they are
            again = ops.bit_depth(y, bits, lo=lo, hi=hi)
            np.testing.assert_array_equal(again, y)


@SETTINGS
@given(x=arrays(), size=st.one_of(st.integers(-2, 9), floats), layout=layouts, out=outs, isa=isas)
def test_median_any_input(x, size, layout, out, isa):
    y = _call(ops.median_filter, x, size, layout=layout, out=out, isa=isa)
    if y is not None:
        assert y.shape == x.shape and y.dtype == x.dtype
        finite = np.isfinite(y) if y.dtype.kind == "f" else np.ones(y.shape, bool)
        assert np.isin(y[finite], x).all()  # a median is one of the input values


@SETTINGS
@given(x=arrays(), lo=floats, hi=floats, grid=st.one_of(st.none(), st.integers(-2, 70000), floats), isa=isas)
def test_sample_checks_any_input(x, lo, hi, grid, isa):
    r = _call(ops.sample_checks, x, lo=lo, hi=hi, grid=grid, isa=isa)
    if r is not None:
        n = x.shape[0]
        assert r.nonfinite.shape == (n,) and (r.nonfinite >= 0).all() and (r.out_of_range >= 0).all()


@SETTINGS
@given(x=arrays(), lo=st.one_of(floats, arrays()), hi=st.one_of(floats, arrays()),
       axis=st.one_of(st.none(), st.integers(-6, 6), floats), out=outs, isa=isas)
def test_activation_ops_any_input(x, lo, hi, axis, out, isa):
    _call(ops.minmax, x, channel_axis=axis, isa=isa)
    _call(ops.range_check, x, lo, hi, channel_axis=axis, isa=isa)
    y = _call(ops.clamp, x, lo, hi, channel_axis=axis, out=out, isa=isa)
    if y is not None:
        assert y.shape == x.shape


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(x=arrays(), quality=st.one_of(st.integers(-5, 105), floats), layout=layouts, out=outs)
def test_jpeg_any_input(x, quality, layout, out):
    _call(ops.jpeg, x, quality, layout=layout, out=out)


# ---- sessions ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sessions():
    model, profile = model_and_profile()
    return {action: pyguard.InferenceSession(model, profile=profile, action=action)
            for action in ("monitor", "reject", "purify")} | {"plain": pyguard.InferenceSession(model)}


names = st.one_of(st.just("image"), st.text(max_size=6))
feeds = st.one_of(st.dictionaries(names, st.one_of(arrays(), floats, st.lists(st.floats(), max_size=3)),
                                  max_size=3),
                  st.lists(arrays(), max_size=2), st.none(), st.text(max_size=3))
image_like = hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.just(3), st.just(16), st.just(16)),
                        elements=st.floats(-2, 3, width=32) | st.sampled_from([np.nan, np.inf, 0.0, 1.0]))


@SETTINGS
@given(feed=feeds, output_names=st.one_of(st.none(), st.lists(names, max_size=2)))
def test_session_any_feed(sessions, feed, output_names):
    for sess in sessions.values():
        try:
            outputs = sess.run(output_names, feed)
        except (pyguard.InputError, pyguard.ConfigError, pyguard.AdversarialInputError):
            continue
        assert isinstance(outputs, list)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(x=image_like)
def test_session_any_image_values(sessions, x):
    expected = pyguard.InferenceSession.__mro__[1].run(sessions["plain"], None, {"image": x})
    for action, sess in sessions.items():
        try:
            outputs, report = sess.run_with_report(None, {"image": x})
        except pyguard.AdversarialInputError as e:
            assert action == "reject" and e.report.any_flagged
            continue
        bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
        assert report.flagged[bad].all()  # NaN/Inf samples are flagged with or without a profile
        if action in ("monitor", "plain"):  # monitor mode is bit-identical to onnxruntime
            assert outputs[0].tobytes() == expected[0].tobytes()


# ---- profile files -----------------------------------------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


@st.composite
def mutated_profiles(draw):
    d = model_and_profile()[1].to_dict()
    for _ in range(draw(st.integers(1, 4))):
        target = d["input"] if isinstance(d.get("input"), dict) and d["input"] and draw(st.booleans()) else d
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(json_values)
    return d


@SETTINGS
@given(d=mutated_profiles())
def test_profile_any_mutation(d):
    try:
        profile = pyguard.GuardProfile.from_dict(d)
    except pyguard.ProfileError:
        return
    profile.validate()
    assert pyguard.GuardProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


@SETTINGS
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                      json_values.map(lambda v: json.dumps(v).encode())))
def test_profile_file_any_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "p.json"
    path.write_bytes(data)
    with pytest.raises(pyguard.ProfileError):
        pyguard.GuardProfile.load(path)


def test_profile_file_deeply_nested_json(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(pyguard.ProfileError):
        pyguard.GuardProfile.load(path)


# ---- model bytes -------------------------------------------------------------------------------------------
@st.composite
def mutated_models(draw):
    data = bytearray(model_and_profile()[0])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 2))
        i = draw(st.integers(0, len(data) - 1))
        if kind == 0:
            data[i] = draw(st.integers(0, 255))
        elif kind == 1:
            del data[i:i + draw(st.integers(1, 64))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def test_empty_batch_is_an_input_error(sessions):
    """Found by fuzz/fuzz_pyguard.py: an empty batch reached the ops and raised a bare ValueError."""
    empty = np.zeros((0, 3, 16, 16), np.float32)
    for action in ("monitor", "reject", "purify"):
        with pytest.raises(pyguard.InputError, match="empty"):
            sessions[action].run(None, {"image": empty})


def test_model_with_non_utf8_names_is_a_model_error():
    """Found by fuzz/fuzz_pyguard.py: onnxruntime raised UnicodeDecodeError for such a model."""
    model = model_and_profile()[0]
    for bad in (model.replace(b"probs", b"pr\xe3bs"), model.replace(b"image", b"im\xffge")):
        with pytest.raises(pyguard.ModelError, match="UTF-8|utf-8"):
            pyguard.InferenceSession(bad)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(model=st.one_of(mutated_models(), st.binary(max_size=64)))
def test_model_any_bytes(model):
    original, profile = model_and_profile()
    if model != original:  # a mutation may write back the same byte
        with pytest.raises(pyguard.ProfileError):  # pinned: another sha256 never reaches onnxruntime
            pyguard.InferenceSession(model, profile=profile)
    try:
        pyguard.InferenceSession(model)
    except pyguard.ModelError:
        pass
