"""``initlab doctor [--steps N] [--verify] [--dir DIR] [--no-figure] OVERRIDES...``

Examines the net of ``initlab run OVERRIDES`` (the same config groups and Hydra override grammar) in a short
probed training, prints the report and writes ``doctor.md``, ``doctor.json`` and ``doctor.png`` into the run
directory (default ``outputs/doctor/DATE/TIME``). Exit status: 0 for a clean report, 1 when there is a
finding, 2 for bad input.
"""

from __future__ import annotations

import argparse

from initlab.diagnosis.examine import DEFAULT_STEPS


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="initlab doctor",
        description="Diagnose a net in a short probed training: what is wrong inside it, why, what fixes it.",
        epilog="example: initlab doctor init=xavier act=relu model.depth=30 --verify",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for `initlab run`")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"updates (default {DEFAULT_STEPS})")
    parser.add_argument("--verify", action="store_true", help="rerun with each suggested fix, before/after")
    parser.add_argument("--dir", default=None, help="run directory (default outputs/doctor/DATE/TIME)")
    parser.add_argument("--no-figure", action="store_true", help="do not draw doctor.png")
    args = parser.parse_intermixed_args(argv)
    from initlab.diagnosis.session import doctor_config

    report = doctor_config(
        args.overrides, steps=args.steps, run_dir=args.dir, verify=args.verify, figure=not args.no_figure
    )
    print(f"initlab: report written to {report.run_dir}/doctor.md")
    return 0 if report.clean else 1
