"""cnn-visualizer's engine: a pure-NumPy CNN with exact gradients and the pictures that explain it."""

from engine.model import ForwardResult, LayerInfo, LossResult, Model
from engine.specs import ModelSpec, SpecError, parse_spec, spec_to_dict

__all__ = ["ForwardResult", "LayerInfo", "LossResult", "Model", "ModelSpec", "SpecError", "parse_spec", "spec_to_dict"]
