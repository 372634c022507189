"""``python -m bench engine|training|api|load|explain|features|page|history|scale [--json]``: print a table, or the same figures as JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import os

# PyTorch's OpenMP workers otherwise spin between calls and steal the cores from NumPy's BLAS
# (and back): measured, that alone made either side look several times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", choices=["engine", "training", "api", "load", "explain", "features", "page", "history", "scale"])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (more: steadier medians)")
    parser.add_argument("--seconds", type=float, default=None, help="load: how long the clients run (default 20)")
    parser.add_argument("--clients", type=int, default=None, help="load: concurrent clients (default 50)")
    args = parser.parse_args(argv)
    # the allocator settings `cnnvis serve` and `cnnvis train` run with; both sides share them
    from engine.runtime import keep_freed_memory

    keep_freed_memory()
    module = importlib.import_module(f"bench.{args.suite}")
    given = {"rounds": args.rounds, "seconds": args.seconds, "clients": args.clients}
    report = module.run(**{k: v for k, v in given.items() if v is not None})
    print(json.dumps(report, indent=2) if args.json else module.table(report))


if __name__ == "__main__":
    main()
