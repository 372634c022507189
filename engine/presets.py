"""Named architectures that adapt to any input shape and number of classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Spec = dict[str, Any]


def _conv(filters: int, k: int, padding: int | str = 0) -> dict:
    return {"type": "conv2d", "filters": filters, "kernel_size": k, "stride": 1, "padding": padding}


_RELU = {"type": "relu"}
_POOL = {"type": "maxpool2d", "pool_size": 2}


def tiny_vgg(input_shape, num_classes) -> list[dict]:
    """CNN Explainer's TinyVGG: (conv3x3(10) relu) x2, maxpool2, twice; flatten; dense; softmax."""
    block = [_conv(10, 3), _RELU, _conv(10, 3), _RELU, _POOL]
    return [*block, *block, {"type": "flatten"}, {"type": "dense", "units": num_classes}, {"type": "softmax"}]


def tiny_vgg_bn(input_shape, num_classes) -> list[dict]:
    """TinyVGG with batch normalization between each convolution and its relu."""
    norm = {"type": "batchnorm2d"}
    block = [_conv(10, 3), norm, _RELU, _conv(10, 3), norm, _RELU, _POOL]
    return [*block, *block, {"type": "flatten"}, {"type": "dense", "units": num_classes}, {"type": "softmax"}]


def lenet5(input_shape, num_classes) -> list[dict]:
    """LeNet-5 with ReLU and max pooling: conv5x5(6, pad 2), pool, conv5x5(16), pool, dense 120, 84, classes."""
    return [
        _conv(6, 5, 2), _RELU, _POOL,
        _conv(16, 5), _RELU, _POOL,
        {"type": "flatten"},
        {"type": "dense", "units": 120}, _RELU,
        {"type": "dense", "units": 84}, _RELU,
        {"type": "dense", "units": num_classes}, {"type": "softmax"},
    ]  # fmt: skip


def nin(input_shape, num_classes) -> list[dict]:
    """Network in network: 3x3 convolutions each followed by 1x1 "micro-network" convolutions, then a
    1x1 convolution to one map per class and global average pooling: no dense layer at all."""
    return [
        _conv(16, 3, 1), _RELU, _conv(16, 1), _RELU, _POOL,
        _conv(32, 3, 1), _RELU, _conv(32, 1), _RELU, _POOL,
        _conv(32, 3, 1), _RELU, _conv(num_classes, 1),
        {"type": "global_avgpool2d"}, {"type": "softmax"},
    ]  # fmt: skip


def mlp(input_shape, num_classes) -> list[dict]:
    """No convolution: the baseline that shows what weight sharing buys."""
    return [
        {"type": "flatten"},
        {"type": "dense", "units": 128}, _RELU,
        {"type": "dense", "units": 64}, _RELU,
        {"type": "dense", "units": num_classes}, {"type": "softmax"},
    ]  # fmt: skip


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    layers: Callable[[tuple[int, int, int], int], list[dict]]
    default_dataset: str
    learning_rate: float


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny-vgg", "TinyVGG", "CNN Explainer's network: two blocks of two 3x3 convolutions and a max pool.", tiny_vgg, "shapes", 0.01),
        Preset("tiny-vgg-bn", "TinyVGG + batch norm", "TinyVGG with batch normalization between each convolution "
               "and its relu.", tiny_vgg_bn, "shapes", 0.01),
        Preset("lenet5", "LeNet-5", "LeCun's digit reader: 5x5 convolutions, pooling, three dense layers.", lenet5, "digits", 0.05),
        Preset("nin", "Network in Network", "1x1 convolutions and global average pooling instead of dense layers.", nin, "shapes", 0.01),
        Preset("mlp", "Multi-layer perceptron", "No convolutions: the baseline that shows why convolutions matter.", mlp, "digits", 0.05),
    )
}


def preset_spec(name: str, input_shape: tuple[int, int, int], num_classes: int) -> Spec:
    """The JSON spec of preset ``name`` for inputs ``(C, H, W)`` and ``num_classes`` outputs."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return {"version": 1, "input_shape": list(input_shape), "layers": PRESETS[name].layers(tuple(input_shape), num_classes)}
