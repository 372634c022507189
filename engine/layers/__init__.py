"""Layer families, one file each; `engine.registry` pairs each with its spec type."""

from __future__ import annotations

from engine.layers.base import Layer, ReceptiveField, Shape, ShapeError

__all__ = ["Layer", "ReceptiveField", "Shape", "ShapeError"]
