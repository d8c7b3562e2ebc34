#!/usr/bin/env python3
"""Run one benchmark several times and report the median of each figure with its spread.

One run on a shared 2-core machine says little (README "Performance": the echo ceiling alone
went 46 ms in one run, 68 ms in the next), so figures for the README come from several runs:
each run is the benchmark's own command in a fresh process with a fresh system, its
`name=value` lines are collected, and this prints

    name=<median>                          for every numeric figure
    # name: median M, min A, max B over N runs
    # goal NAME OP LIMIT: <median> (met|missed)   for every goal the benchmark reported

A run that fails is reported and left out (the exit status is 1 if any failed).

    .venv/bin/python scripts/bench_runs.py --runs 3 -- scripts/loadgen.py --members 2000 --calls 500 --ceilings
"""
import argparse
import re
import statistics
import subprocess
import sys

from benchkit import comment, emit, progress, report_goal

FIGURE = re.compile(r"^([a-z][a-z0-9_]*)=(-?[0-9.]+(?:e[-+]?[0-9]+)?)$")
GOAL = re.compile(r"^# goal (\S+) (<=|>=|<|>) ([0-9.e+-]+): (-?[0-9.e+-]+) ")


def one_run(command, index, runs):
    """({figure: value}, {goal: (relation, limit, value)}) of one run, or None if it failed."""
    progress(f"run {index} of {runs}: {' '.join(command)}")
    done = subprocess.run([sys.executable, *command], stdout=subprocess.PIPE, text=True)
    figures, goals = {}, {}
    for line in done.stdout.splitlines():
        if (figure := FIGURE.match(line)) is not None:
            figures[figure[1]] = float(figure[2])
        elif (goal := GOAL.match(line)) is not None:
            goals[goal[1]] = (goal[2], float(goal[3]), float(goal[4]))
    if done.returncode != 0:
        comment(f"run {index} failed (exit {done.returncode}): left out")
        return None
    return figures, goals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="how many times to run it (default 3)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the benchmark script and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.runs < 1:
        parser.error("give --runs N (at least 1) and the benchmark after --")
    results = [result for index in range(1, args.runs + 1)
               if (result := one_run(command, index, args.runs)) is not None]
    if not results:
        comment("no run succeeded")
        return 1
    names = sorted({name for figures, _ in results for name in figures})
    medians = {}
    for name in names:
        values = [figures[name] for figures, _ in results if name in figures]
        medians[name] = statistics.median(values)
        emit(name, medians[name])
        comment(f"{name}: median {medians[name]:.4g}, min {min(values):.4g}, max {max(values):.4g} "
                f"over {len(values)} runs")
    for name in sorted({name for _, goals in results for name in goals}):
        reported = [goals[name] for _, goals in results if name in goals]
        relation, limit, _ = reported[0]
        report_goal(name, relation, limit, statistics.median(value for _, _, value in reported))
    return 0 if len(results) == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
