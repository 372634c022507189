"""The page's module graph, read from the sources: what the first drawing waits for stays small and
shallow, and every view is loaded by one of the two stages (static/js/main.js)."""

from __future__ import annotations

import re
from pathlib import Path

JS = Path(__file__).resolve().parents[2] / "static" / "js"
STATIC = re.compile(r"""^\s*(?:import|export)\s[^;]*?\bfrom\s+['"](\.[^'"]+)['"]|^\s*import\s+['"](\.[^'"]+)['"]""", re.M)
DYNAMIC = re.compile(r"""\bimport\(\s*['"](\.[^'"]+)['"]\s*\)""")


def rel(path: Path) -> str:
    return path.relative_to(JS).as_posix()


def first_stage() -> dict[str, int]:
    """Every module main.js imports statically, directly or not, with its depth (main.js is 0)."""
    depth = {"main.js": 0}
    frontier = ["main.js"]
    while frontier:
        nxt = []
        for name in frontier:
            text = (JS / name).read_text(encoding="utf-8")
            for m in STATIC.finditer(text):
                dep = rel((JS / name).parent.joinpath(m.group(1) or m.group(2)).resolve())
                if dep not in depth:
                    depth[dep] = depth[name] + 1
                    nxt.append(dep)
        frontier = nxt
    return depth


def test_the_first_drawing_waits_for_few_modules_in_few_rounds():
    depth = first_stage()
    assert {"views/overview.js", "state.js", "api.js", "actions.js"} <= set(depth)
    later = [n for n in depth if n.startswith(("views/learn/", "views/explain/", "views/unit/")) or n in (
        "views/input.js", "views/detail.js", "views/filters.js", "views/training.js", "views/evaluation.js", "charts.js")]
    assert not later, f"the first stage imports modules the first drawing does not need: {later}"
    assert len(depth) <= 40, sorted(depth)  # 74 before the stages
    assert max(depth.values()) <= 3, {n: d for n, d in depth.items() if d > 3}  # each level is a round trip


def test_every_view_is_mounted_by_a_stage():
    main = (JS / "main.js").read_text(encoding="utf-8")
    static = {rel((JS / m.group(1)).resolve()) for m in STATIC.finditer(main) if m.group(1)}
    dynamic = {rel((JS / m.group(1)).resolve()) for m in DYNAMIC.finditer(main)}
    views = {rel(p) for p in (JS / "views").glob("*.js")} | {"views/learn/panel.js"}
    helpers = {"views/freeze.js", "views/share.js"}  # parts of views/models.js, not views
    assert views - helpers <= static | dynamic, sorted(views - helpers - static - dynamic)
    assert not static & dynamic
    for name in dynamic:
        assert (JS / name).is_file(), name
