"""A whole simulated hospital day in the sandbox, printing memory as it goes.

    python -m benchmarks.sandbox_day --pace 600            # 24 h in about 2.5 min
    python -m benchmarks.sandbox_day --pace 600 --hours 2 --rate 3 --json

Why: the sandbox must run for a whole training day without its memory growing
with the pathways it completed (finished pathways are forgotten, statistics are a
bounded window). Every simulated hour it prints one line: simulated time, wall
seconds, pathways completed/failed/running, and the process RSS. ``--json`` prints
one JSON object per line instead (what the test reads). The run is bounded in wall
time by ``--max-wall`` whatever the pace.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from simulators.cli.sandbox import load_environment
from simulators.sandbox.sandbox import Sandbox, rss_mb

SITE = Path(__file__).resolve().parents[1] / "scenarios" / "sites" / "training-hospital.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pace", type=float, default=600.0, help="speed factor (default 600)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours to run")
    parser.add_argument("--rate", type=float, default=1.0, help="arrival rate factor")
    parser.add_argument("--every", type=float, default=60.0,
                        help="simulated minutes between memory lines (default 60)")
    parser.add_argument("--site", type=Path, default=SITE)
    parser.add_argument("--target", default="builtin", choices=["builtin", "orthanc"])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--start", default="00:00", help="simulated time of day to begin")
    parser.add_argument("--max-wall", type=float, default=900.0, help="wall-clock bound, s")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

    import datetime as dt

    environment = load_environment(args.site, args.target)
    sandbox = Sandbox(environment, pace=args.pace, seed=args.seed,
                      start_time=dt.time.fromisoformat(args.start))
    began = time.monotonic()
    with sandbox:
        sandbox.set_rate(args.rate)
        end, step = args.hours * 3600.0, args.every * 60.0
        mark = step
        while mark <= end + 1e-6 and time.monotonic() - began < args.max_wall:
            if not sandbox.clock.wait_until(mark):
                break
            _report(sandbox, began, args.json)
            mark += step
    if not args.json:
        print(f"done: {time.monotonic() - began:.1f}s wall, RSS {rss_mb():.1f} MB")
    return 0


def _report(sandbox: Sandbox, began: float, as_json: bool) -> None:
    counts = sandbox.counters.snapshot()
    totals = counts["totals"]
    line = {"sim_hours": round(sandbox.clock.now() / 3600.0, 2),
            "sim_time": sandbox.clock.datetime().strftime("%H:%M"),
            "wall_s": round(time.monotonic() - began, 1), "completed": totals["completed"],
            "failed": totals["failed"], "running": totals["running"],
            "dropped": counts["dropped"], "rss_mb": round(rss_mb(), 1)}
    if as_json:
        print(json.dumps(line), flush=True)
    else:
        print(f"{line['sim_time']} (+{line['sim_hours']:5.2f} h, {line['wall_s']:6.1f}s wall): "
              f"completed {line['completed']:4d}, failed {line['failed']:3d}, running "
              f"{line['running']:2d}, dropped {line['dropped']:3d}, RSS {line['rss_mb']:.1f} MB",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
