"""The colour maps, as the page and any client receive them: engine/colormaps.py's one table.

``lut`` is the base64 of a map's 256 RGB entries (768 bytes, entry ``i`` at bytes ``3i..3i+2``);
the rule from a value to an entry is in engine/colormaps.py's docstring.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from engine.colormaps import CHOICES, COLORMAPS

router = APIRouter(tags=["pictures"])
# "auto" or a map's name; anything else is a 422 that lists the choices.
Cmap = Annotated[Literal[CHOICES], Query(description='"auto" (rdbu for signed values, viridis otherwise) or a map of GET /colormaps')]  # type: ignore[valid-type]


class ColorMapOut(BaseModel):
    name: str
    label: str
    kind: Literal["diverging", "sequential"]
    lut: str


def colormap_table() -> list[dict[str, Any]]:
    """Every map as ``{"name", "label", "kind", "lut": base64 of (256, 3) uint8}``, in the page's order."""
    return [{"name": m.name, "label": m.label, "kind": m.kind, "lut": base64.b64encode(m.lut.tobytes()).decode("ascii")}
            for m in COLORMAPS.values()]


@router.get("/colormaps", summary="Every colour map's 256-entry RGB table (base64), as the page and the PNGs use them")
async def colormaps() -> list[ColorMapOut]:
    return [ColorMapOut(**m) for m in colormap_table()]
