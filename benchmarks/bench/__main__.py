"""`python -m benchmarks.bench`: what scripts/bench runs (the package's docstring says what it measures)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from benchmarks.bench import __doc__ as description
from benchmarks.bench.goals import print_goals
from benchmarks.bench.phases import Bench
from benchmarks.bench.plan import FULL, SMOKE
from benchmarks.bench.processes import ROOT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="few turns on small sizes: checks the bench, not the app")
    parser.add_argument("--json", type=Path, help="where the figures go (default .bench/bench.json or smoke.json)")
    parser.add_argument("--images", type=Path, default=ROOT / ".bench", help="where the pictures go (not with --smoke)")
    args = parser.parse_args(argv)
    output = args.json or ROOT / ".bench" / ("smoke.json" if args.smoke else "bench.json")
    figures = asyncio.run(Bench(SMOKE if args.smoke else FULL, args.smoke).run())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=1) + "\n")
    print_goals(figures["goals"])
    print(f"\nfigures in {output} ({figures['seconds']:.0f} s)")
    if not args.smoke:
        from benchmarks.bench import plots

        for path in plots.draw(figures, args.images):
            print(f"picture {path}")


if __name__ == "__main__":
    main()
