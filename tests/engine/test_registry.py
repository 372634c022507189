"""The layer-type registry: every row complete, its declared fields the spec's fields, its declared
parameters and buffers the ones its layer allocates, and the JSON the API and page read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.model import Model
from engine.registry import REGISTRY, build_layer, check_registry, layer_types, weight_count
from engine.specs import KINDS, SpecError, parse_layer

# One spec per type with every required field, and a per-example input it fits.
SAMPLES = {
    "conv2d": ({"type": "conv2d", "filters": 3, "kernel_size": 3}, (2, 6, 6)),
    "relu": ({"type": "relu"}, (2, 4, 4)),
    "leaky_relu": ({"type": "leaky_relu"}, (2, 4, 4)),
    "sigmoid": ({"type": "sigmoid"}, (5,)),
    "tanh": ({"type": "tanh"}, (5,)),
    "maxpool2d": ({"type": "maxpool2d", "pool_size": 2}, (2, 4, 4)),
    "avgpool2d": ({"type": "avgpool2d", "pool_size": 2}, (2, 4, 4)),
    "global_avgpool2d": ({"type": "global_avgpool2d"}, (2, 4, 4)),
    "dropout": ({"type": "dropout"}, (2, 4, 4)),
    "flatten": ({"type": "flatten"}, (2, 4, 4)),
    "dense": ({"type": "dense", "units": 4}, (6,)),
    "softmax": ({"type": "softmax"}, (6,)),
    "batchnorm2d": ({"type": "batchnorm2d"}, (3, 4, 4)),
}


def test_every_row_is_complete_and_sampled_here():
    check_registry()
    assert set(SAMPLES) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_declared_arrays_are_the_ones_the_layer_holds(name):
    spec_json, in_shape = SAMPLES[name]
    spec = parse_layer(spec_json)
    layer = build_layer(spec, in_shape, np.random.default_rng(0))
    assert {k: v.shape for k, v in layer.params.items()} == spec.param_shapes(in_shape)
    assert {k: v.shape for k, v in layer.buffers.items()} == spec.buffer_shapes(in_shape)
    assert set(layer.params) <= set(spec.parameters) and set(layer.buffers) <= set(spec.buffers)
    assert weight_count(spec, in_shape) == sum(v.size for v in layer.params.values())


def test_the_weight_limit_counts_from_the_registry_before_allocating():
    spec = {"input_shape": [3, 8, 8], "layers": [{"type": "conv2d", "filters": 4, "kernel_size": 3},
                                                 {"type": "batchnorm2d"}, {"type": "flatten"}, {"type": "dense", "units": 2}]}
    total = 4 * 3 * 9 + 4 + 2 * 4 + 2 * 144 + 2
    assert Model.build(spec).num_parameters == total
    Model.build(spec, max_parameters=total)
    with pytest.raises(SpecError, match="layer 3 \\(dense\\): the network would have over"):
        Model.build(spec, max_parameters=total - 1)


def test_published_facts():
    facts = {t["type"]: t for t in layer_types()}
    assert set(facts) == set(REGISTRY)
    for t in facts.values():
        assert t["kind"] in KINDS and t["title"] and t["explanation"].endswith(".")
        assert {"fields", "parameters", "buffers"} <= set(t)
        cls = REGISTRY[t["type"]].spec
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        assert {f["name"] for f in t["fields"] if f.get("required")} == required
    padding = next(f for f in facts["conv2d"]["fields"] if f["name"] == "padding")
    assert padding == {"name": "padding", "kind": "int", "help": padding["help"], "default": 0, "min": 0, "max": 16,
                       "choices": ["same", "valid"]}
    stride = next(f for f in facts["maxpool2d"]["fields"] if f["name"] == "stride")
    assert stride["nullable"] is True and stride["default"] is None
    assert facts["batchnorm2d"]["buffers"] == ["running_mean", "running_var"]
    assert facts["batchnorm2d"]["kind"] == "normalize"
    assert facts["relu"]["parameters"] == [] and facts["dense"]["parameters"] == ["weight", "bias"]


@pytest.mark.parametrize("bad, message", [
    ({"type": "maxpool2d", "pool_size": 2, "stride": "auto"}, "stride must be an integer"),
    ({"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "full"}, "padding must be an integer or one of ['same', 'valid']"),
    ({"type": "batchnorm2d", "eps": 0}, "eps must be at least 1e-10"),
    ({"type": "batchnorm2d", "affine": 1}, "affine must be true or false"),
    ({"type": ["conv2d"]}, "unknown type"),
])
def test_fields_are_checked_from_their_declarations(bad, message):
    with pytest.raises(SpecError, match=message.replace("[", "\\[").replace("(", "\\(")):
        parse_layer(bad)


def test_a_huge_bad_value_is_not_echoed_whole():
    with pytest.raises(SpecError) as info:
        parse_layer({"type": "dense", "units": [[1] * 100_000]})
    assert str(info.value) == "layer (dense): units must be an integer, got a list of 1 item"
    with pytest.raises(SpecError) as info:
        parse_layer({"type": "dense", "units": "x" * 10_000})
    assert len(str(info.value)) < 120
