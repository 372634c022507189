"""Every layer type through the same checks: one table, one row per configuration.

For each row: the output shape equals ``output_shape``, the output and the gradients equal those of
`engine.reference` (plain loops in NCHW, itself checked against PyTorch in test_reference.py),
``grads.keys() == params.keys()``, neither forward nor backward mutates the input, the parameters
or the buffers, and input and parameter gradients match central finite differences in float64 for
the random projection loss ``sum(out * R)`` (so every output matters).

A new layer type is tested by adding a row to ``CASES`` (and its pair of functions to
`engine.reference`); `test_every_layer_type_has_a_row` fails until both exist.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

from engine import reference
from engine.registry import build_layer
from engine.registry import REGISTRY as LAYER_TYPES
from engine.specs import parse_layer
from tests.engine.conftest import assert_grad_close, kink_free, numerical_grad

# ---- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    spec: dict
    in_shape: tuple[int, ...]  # per example: (C, H, W) or (D,)
    train: bool = False
    n: int = 2

    @property
    def id(self) -> str:
        fields = "-".join(f"{k}{v}" for k, v in self.spec.items() if k != "type")
        mode = "-train" if self.train else ""
        return f"{self.spec['type']}{'-' + fields if fields else ''}{mode}-in{'x'.join(map(str, self.in_shape))}"


SIZES = [(7, 10), (8, 5), (5, 7), (9, 9), (6, 11)]  # odd, even and non-square


def _conv_cases() -> list[Case]:
    cases = []
    # every kernel size with every padding at stride 1 (includes "same" with even kernels 2 and 4)
    for idx, (k, pad) in enumerate(itertools.product((1, 2, 3, 4, 5), (0, 1, 2, "same", "valid"))):
        h, w = SIZES[idx % len(SIZES)]
        spec = {"type": "conv2d", "filters": 3, "kernel_size": k, "stride": 1, "padding": pad, "bias": idx % 3 != 2}
        cases.append(Case(spec, (2, h, w)))
    # strides 2 and 3 over every kernel size, with a spread of paddings
    for idx, (k, s) in enumerate(itertools.product((1, 2, 3, 4, 5), (2, 3))):
        h, w = SIZES[(idx + 1) % len(SIZES)]
        pad = (0, 1, 2, "valid")[idx % 4]
        spec = {"type": "conv2d", "filters": 3, "kernel_size": k, "stride": s, "padding": pad, "bias": idx % 2 == 0}
        cases.append(Case(spec, (2, h, w)))
    # one input channel, one filter; three channels
    cases.append(Case({"type": "conv2d", "filters": 1, "kernel_size": 3}, (1, 5, 6)))
    cases.append(Case({"type": "conv2d", "filters": 4, "kernel_size": 2, "stride": 2, "padding": 1}, (3, 6, 5), n=3))
    return cases


def _pool_cases() -> list[Case]:
    cases = []
    combos = itertools.product(("maxpool2d", "avgpool2d"), (2, 3), (None, 1, 2, 3), (0, 1))
    for idx, (kind, k, s, p) in enumerate(combos):
        spec = {"type": kind, "pool_size": k, "padding": p}
        if s is not None:
            spec["stride"] = s
        in_shape = (2, 7, 10) if idx % 2 == 0 else (3, 6, 9)
        cases.append(Case(spec, in_shape))
    return cases


CASES: list[Case] = [
    *_conv_cases(),
    Case({"type": "relu"}, (2, 5, 6)),
    Case({"type": "relu"}, (7,), n=3),
    Case({"type": "leaky_relu"}, (2, 5, 6)),
    Case({"type": "leaky_relu", "alpha": 0.2}, (7,), n=3),
    Case({"type": "leaky_relu", "alpha": 0.0}, (2, 4, 3)),
    Case({"type": "sigmoid"}, (2, 5, 6)),
    Case({"type": "sigmoid"}, (7,), n=3),
    Case({"type": "tanh"}, (2, 5, 6)),
    Case({"type": "tanh"}, (7,), n=3),
    *_pool_cases(),
    Case({"type": "global_avgpool2d"}, (3, 5, 7)),
    Case({"type": "global_avgpool2d"}, (2, 1, 1)),
    Case({"type": "dropout", "rate": 0.5}, (2, 5, 6), train=True),
    Case({"type": "dropout", "rate": 0.25}, (9,), train=True, n=3),
    Case({"type": "dropout", "rate": 0.5}, (2, 5, 6), train=False),
    Case({"type": "dropout", "rate": 0.0}, (2, 3, 4), train=True),
    Case({"type": "flatten"}, (3, 4, 5)),
    Case({"type": "flatten"}, (6,), n=3),
    Case({"type": "dense", "units": 4}, (7,), n=3),
    Case({"type": "dense", "units": 1, "bias": False}, (5,)),
    Case({"type": "dense", "units": 6}, (1,), n=4),
    Case({"type": "softmax"}, (5,), n=3),
    Case({"type": "softmax"}, (2,)),
    Case({"type": "batchnorm2d"}, (3, 4, 5), train=True),
    Case({"type": "batchnorm2d", "momentum": 0.3, "eps": 1e-3}, (2, 3, 3), train=True, n=3),
    Case({"type": "batchnorm2d", "affine": False}, (2, 4, 3), train=True),
    Case({"type": "batchnorm2d"}, (3, 4, 5), train=False),
]

DROPOUT_SEED = 11


# ---- helpers ------------------------------------------------------------------------------------


def _build(case: Case, seed: int = 0):
    layer = build_layer(parse_layer(case.spec), case.in_shape, np.random.default_rng(seed), np.float64)
    rng = np.random.default_rng(seed + 100)
    for p in layer.params.values():  # random biases too (they start at zero)
        p[...] = rng.normal(size=p.shape)
    for b in layer.buffers.values():  # positive: a running variance must be
        b[...] = rng.uniform(0.5, 1.5, size=b.shape)
    return layer


def _to_internal(x: np.ndarray) -> np.ndarray:
    """Public (N, C, H, W) -> engine (C, N, H, W); (N, D) unchanged."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)) if x.ndim == 4 else x


def _to_public(x: np.ndarray) -> np.ndarray:
    return x.transpose(1, 0, 2, 3) if x.ndim == 4 else x


def _internal_shape(n: int, per_example: tuple[int, ...]) -> tuple[int, ...]:
    return (per_example[0], n, *per_example[1:]) if len(per_example) == 3 else (n, *per_example)


def _input(case: Case, seed: int = 1) -> np.ndarray:
    """Engine-layout float64 input with no value near a relu kink or a max-pool tie."""
    rng = np.random.default_rng(seed)
    return _to_internal(kink_free(rng, (case.n, *case.in_shape)))


def _forward(layer, case: Case, x: np.ndarray):
    rng = np.random.default_rng(DROPOUT_SEED) if case.train else None  # fixed rng: a fixed dropout mask
    return layer.forward(x, train=case.train, rng=rng)


def _reference(layer, case: Case, x: np.ndarray, out: np.ndarray | None = None):
    """`engine.reference` on the same input, parameters and buffers, in public layout: ``(out, cache,
    buffers')``. Dropout in training keeps what the engine kept: the mask is read off its ``out``."""
    mask = (_to_public(out) != 0).astype(np.float64) if case.train and case.spec["type"] == "dropout" else None
    params = {k: v.copy() for k, v in layer.params.items()}
    buffers = {k: v.copy() for k, v in layer.buffers.items()}
    return reference.layer_forward(layer.spec, params, _to_public(x.copy()), train=case.train, mask=mask, buffers=buffers)


ids = [c.id for c in CASES]


# ---- the checks ---------------------------------------------------------------------------------


def test_every_layer_type_has_a_row():
    assert {c.spec["type"] for c in CASES} == set(LAYER_TYPES)
    assert set(LAYER_TYPES) <= set(reference.BACKWARD)


def test_case_ids_are_unique():
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_forward_and_backward_match_the_reference(case: Case):
    """Output, input and parameter gradients, and (training) new buffer values."""
    layer = _build(case)
    x = _input(case)
    out, cache = _forward(layer, case, x)
    expected_shape = _internal_shape(case.n, layer.output_shape(case.in_shape))
    assert out.shape == expected_shape
    assert out.dtype == np.float64
    ref_out, ref_cache, ref_buffers = _reference(layer, case, x, out)
    np.testing.assert_allclose(_to_public(out), ref_out, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(2).normal(size=ref_out.shape)
    dx, grads = layer.backward(_to_internal(dout), cache)
    ref_dx, ref_grads = reference.layer_backward(layer.spec, dout, ref_cache)
    np.testing.assert_allclose(_to_public(dx), ref_dx, rtol=1e-10, atol=1e-12)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    updated = layer.updated_buffers(cache) if case.train else {}
    assert updated.keys() == (ref_buffers.keys() if case.train else set())
    for name in updated:
        np.testing.assert_allclose(updated[name], ref_buffers[name], rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_grads_keys_match_params_and_nothing_is_mutated(case: Case):
    layer = _build(case)
    x = _input(case)
    x_before = x.copy()
    params_before = {k: v.copy() for k, v in layer.params.items()}
    buffers_before = {k: v.copy() for k, v in layer.buffers.items()}
    out, cache = _forward(layer, case, x)
    dout = np.random.default_rng(2).normal(size=out.shape)
    dout_before = dout.copy()
    dx, grads = layer.backward(dout, cache)
    assert set(grads) == set(layer.params)
    for name, g in grads.items():
        assert g.shape == layer.params[name].shape, name
    assert dx.shape == x.shape
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
    assert set(layer.params) == set(params_before)
    for name, p in layer.params.items():
        np.testing.assert_array_equal(p, params_before[name])
    for name, b in layer.buffers.items():
        np.testing.assert_array_equal(b, buffers_before[name])
    # a second forward pass on the same input gives the same output: no state kept between calls
    out2, _ = _forward(layer, case, x)
    np.testing.assert_array_equal(out2, out)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_gradients_match_finite_differences(case: Case):
    layer = _build(case)
    x = _input(case)
    out, cache = _forward(layer, case, x)
    proj = np.random.default_rng(3).normal(size=out.shape)

    def loss() -> float:
        return float(np.sum(_forward(layer, case, x)[0] * proj))

    dx, grads = layer.backward(proj.copy(), cache)
    assert_grad_close(dx, numerical_grad(loss, x), f"{case.id}: input gradient")
    for name, p in layer.params.items():
        assert_grad_close(grads[name], numerical_grad(loss, p), f"{case.id}: {name} gradient")


@pytest.mark.parametrize("case", [c for c in CASES if c.spec["type"] in ("conv2d", "dense")][:6], ids=lambda c: c.id)
def test_backward_skips_what_is_not_needed(case: Case):
    """need_dx=False returns no input gradient; need_grads=False returns no parameter gradients."""
    layer = _build(case)
    x = _input(case)
    out, cache = _forward(layer, case, x)
    dout = np.random.default_rng(4).normal(size=out.shape)
    full_dx, full_grads = layer.backward(dout, cache)
    dx, grads = layer.backward(dout, cache, need_dx=False)
    assert dx is None
    for name in full_grads:  # a stride-1 conv sums in another order without dx (see Conv2DLayer._use_grid)
        np.testing.assert_allclose(grads[name], full_grads[name], rtol=1e-12, atol=1e-12)
    dx, grads = layer.backward(dout, cache, need_grads=False)
    assert grads == {}
    np.testing.assert_array_equal(dx, full_dx)


def test_dropout_train_mask_and_scale():
    """Training: each output is 0 or x / (1 - rate); about rate of them are 0; same rng, same mask."""
    layer = _build(Case({"type": "dropout", "rate": 0.3}, (4, 20, 25)))
    x = kink_free(np.random.default_rng(0), (4, 8, 20, 25))
    out, _ = layer.forward(x, train=True, rng=np.random.default_rng(5))
    dropped = out == 0
    np.testing.assert_allclose(out[~dropped], x[~dropped] / 0.7, rtol=1e-15)
    assert abs(dropped.mean() - 0.3) < 0.02  # 16,000 draws: the standard deviation is 0.004
    again, _ = layer.forward(x, train=True, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(again, out)
    other, _ = layer.forward(x, train=True, rng=np.random.default_rng(6))
    assert not np.array_equal(other, out)
    evaluated, _ = layer.forward(x, train=False, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(evaluated, x)


def test_dropout_in_training_without_rng_is_an_error():
    layer = _build(Case({"type": "dropout", "rate": 0.5}, (3,)))
    with pytest.raises(ValueError, match="rng"):
        layer.forward(np.ones((2, 3)), train=True)


def test_sigmoid_and_softmax_are_stable_for_large_inputs():
    """No overflow warning (warnings are errors here) and exact limits for huge inputs."""
    sig = _build(Case({"type": "sigmoid"}, (4,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = sig.forward(np.array([[-1000.0, -40.0, 40.0, 1000.0]]))
    np.testing.assert_allclose(out, [[0.0, np.exp(-40.0) / (1 + np.exp(-40.0)), 1 / (1 + np.exp(-40.0)), 1.0]], rtol=1e-12)
    soft = _build(Case({"type": "softmax"}, (3,)))
    out, _ = soft.forward(np.array([[1000.0, 1000.0, -1000.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-12)


def test_maxpool_tie_routes_gradient_once():
    """A window whose maximum appears twice passes its gradient to one position only (PyTorch's rule:
    the first in row-major order), so the input gradient sums to the output gradient."""
    layer = _build(Case({"type": "maxpool2d", "pool_size": 2}, (1, 2, 2)))
    x = np.array([[[[3.0, 3.0], [1.0, 3.0]]]])  # (C=1, N=1, 2, 2)
    out, cache = layer.forward(x)
    assert out.item() == 3.0
    dx, _ = layer.backward(np.array([[[[5.0]]]]), cache)
    np.testing.assert_array_equal(dx, [[[[5.0, 0.0], [0.0, 0.0]]]])


@pytest.mark.parametrize(
    "pool",
    [
        {"pool_size": 2},  # windows tile the input
        {"pool_size": 3},  # disjoint, with uncovered rows and columns
        {"pool_size": 2, "stride": 3},  # disjoint, with gaps
        {"pool_size": 3, "stride": 2, "padding": 1},  # overlapping and padded
        {"pool_size": 2, "stride": 1},  # overlapping
    ],
    ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()),
)
def test_maxpool_routes_ties_to_the_first_maximum(pool):
    """Inputs drawn from three values tie in most windows (as relu zeros and flat image regions do)."""
    spec = {"type": "maxpool2d", **pool}
    case = Case(spec, (2, 7, 8), n=3)
    layer = _build(case)
    rng = np.random.default_rng(5)
    x = rng.integers(-1, 2, size=(case.n, *case.in_shape)).astype(np.float64)
    out, cache = layer.forward(_to_internal(x))
    ref_out, ref_cache = reference.maxpool2d_forward(x, pool["pool_size"], pool.get("stride"), pool.get("padding", 0))
    np.testing.assert_array_equal(_to_public(out), ref_out)
    dout = rng.normal(size=ref_out.shape)
    dx, _ = layer.backward(_to_internal(dout), cache)
    # overlapping windows sum into an input in another order than the loops: rounding only
    np.testing.assert_allclose(_to_public(dx), reference.maxpool2d_backward(dout, ref_cache)[0], rtol=1e-12, atol=1e-12)


def test_float32_in_float32_out():
    """Run-time dtype is float32 throughout: no silent promotion to float64."""
    for case in (CASES[0], Case({"type": "sigmoid"}, (3,)), Case({"type": "avgpool2d", "pool_size": 2}, (2, 4, 4))):
        layer = build_layer(parse_layer(case.spec), case.in_shape, np.random.default_rng(0), np.float32)
        x = _input(case).astype(np.float32)
        out, cache = layer.forward(x)
        dx, grads = layer.backward(np.ones_like(out), cache)
        assert out.dtype == np.float32 and dx.dtype == np.float32, case.id
        assert all(g.dtype == np.float32 for g in grads.values()), case.id


CHUNKED = [c for c in CASES if c.spec["type"] == "conv2d"][::5]


@pytest.mark.parametrize("case", CHUNKED, ids=[c.id for c in CHUNKED])
def test_conv_in_batch_chunks_matches_reference_and_finite_differences(case: Case, monkeypatch):
    """The convolution unfolds a batch in chunks of about ``CHUNK_BYTES``; shrink it so a batch of 5
    splits into uneven chunks (2, 2, 1) and check values and gradients again."""
    import engine.layers.conv as conv_module

    case = Case(case.spec, case.in_shape, n=5)
    layer = _build(case)
    x = _input(case)
    full_out, full_cache = layer.forward(x)
    proj = np.random.default_rng(3).normal(size=full_out.shape)
    full_dx, full_grads = layer.backward(proj, full_cache)
    per_image = x.shape[0] * case.spec["kernel_size"] ** 2 * full_out.shape[2] * full_out.shape[3] * x.itemsize
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 2 * per_image)
    out, cache = layer.forward(x)
    np.testing.assert_allclose(_to_public(out), _reference(layer, case, x)[0], rtol=1e-12, atol=1e-12)
    dx, grads = layer.backward(proj, cache)
    np.testing.assert_allclose(dx, full_dx, rtol=1e-12, atol=1e-12)
    for name in full_grads:
        np.testing.assert_allclose(grads[name], full_grads[name], rtol=1e-12, atol=1e-12)
    assert_grad_close(dx, numerical_grad(lambda: float(np.sum(layer.forward(x)[0] * proj)), x), f"{case.id}: chunked input gradient")
    dx_only, _ = layer.backward(proj, cache, need_grads=False)
    np.testing.assert_allclose(dx_only, full_dx, rtol=1e-12, atol=1e-12)


CONV_CASES = [c for c in CASES if c.spec["type"] == "conv2d"]


@pytest.mark.parametrize("case", CONV_CASES, ids=[c.id for c in CONV_CASES])
def test_conv_training_pass_keeps_its_unfolding_with_the_same_results(case: Case, monkeypatch):
    """A training forward pass keeps the unfolded input for the weight gradient when the batch
    unfolds in one block (and only then); gradients equal those of an evaluation pass, which
    unfolds again, and every combination of wanted gradients still holds."""
    import engine.layers.conv as conv_module

    layer = _build(case)
    x = _input(case)
    out, cache = layer.forward(x)
    proj = np.random.default_rng(3).normal(size=out.shape)
    dx, grads = layer.backward(proj, cache)
    train_out, train_cache = layer.forward(x, train=True)
    assert cache[1] is None and train_cache[1] is not None
    np.testing.assert_array_equal(train_out, out)
    kept_dx, kept_grads = layer.backward(proj, train_cache)
    np.testing.assert_allclose(kept_dx, dx, rtol=1e-12, atol=1e-12)
    assert kept_grads.keys() == grads.keys() == layer.params.keys()
    for name in grads:
        np.testing.assert_allclose(kept_grads[name], grads[name], rtol=1e-12, atol=1e-12)
    assert layer.backward(proj, train_cache, need_dx=False)[0] is None
    np.testing.assert_allclose(layer.backward(proj, train_cache, need_grads=False)[0], dx, rtol=1e-12, atol=1e-12)
    assert layer.backward(proj, train_cache, need_dx=False, need_grads=False) == (None, {})

    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)  # one image per block: nothing kept
    assert layer.forward(x, train=True)[1][1] is None


GRID_CASES = [c for c in CASES if c.spec["type"] == "conv2d" and c.spec.get("stride", 1) == 1 and c.spec["kernel_size"] > 1]


@pytest.mark.parametrize("path", ["grid", "strided"])
@pytest.mark.parametrize("case", GRID_CASES, ids=[c.id for c in GRID_CASES])
def test_both_stride1_conv_paths_match_reference_and_finite_differences(case: Case, path: str, monkeypatch):
    """Stride-1 convolutions fold the input gradient either on the flat grid or by strided windows,
    chosen by ``GRID_MAX_WASTE``; force each path in turn so both are checked on every geometry."""
    import engine.layers.conv as conv_module

    monkeypatch.setattr(conv_module, "GRID_MAX_WASTE", 1e9 if path == "grid" else 0.0)
    layer = _build(case)
    x = _input(case)
    assert layer._use_grid(x.shape[2], x.shape[3]) == (path == "grid")
    out, cache = layer.forward(x)
    np.testing.assert_allclose(_to_public(out), _reference(layer, case, x)[0], rtol=1e-12, atol=1e-12)
    proj = np.random.default_rng(3).normal(size=out.shape)
    dx, grads = layer.backward(proj.copy(), cache)

    def loss() -> float:
        return float(np.sum(layer.forward(x)[0] * proj))

    assert_grad_close(dx, numerical_grad(loss, x), f"{case.id} ({path}): input gradient")
    for name, p in layer.params.items():
        assert_grad_close(grads[name], numerical_grad(loss, p), f"{case.id} ({path}): {name} gradient")
