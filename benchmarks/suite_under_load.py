"""Run the test suite repeatedly while other processes keep every core busy, and report any test that fails, with its
traceback.

    .venv/bin/python benchmarks/suite_under_load.py --runs 20 --busy 2

A test that passes alone but fails under CPU load depends on timing: that is a defect to fix, not a skip.  The busy
processes are plain Python loops, ended when the runs finish.  No new run starts after ``--max-minutes``; the summary
says how many of the asked runs completed.  SIGTERM (``kill PID``) or Ctrl-C stops it cleanly: the run in progress
is ended and not counted, and the busy processes go too (a job started in the background of a script ignores SIGINT,
so use SIGTERM there).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUSY_LOOP = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def run_suite() -> tuple[float, str, list[str], str, str]:
    """One run: (seconds, pytest's summary line, the failed tests, the slowest tests, the failures' reports)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=12"],
                          cwd=ROOT, capture_output=True, text=True)
    summary = next((line for line in reversed(proc.stdout.splitlines()) if " in " in line and "passed" in line), "")
    slowest = (proc.stdout.split("slowest 12 durations", 1)[-1].split("\n\n", 1)[0]
               if "slowest 12" in proc.stdout else "")
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.M)
    if proc.returncode != 0 and not failed:
        failed = [f"pytest exit status {proc.returncode}"]
    reports = failure_reports(proc.stdout) if failed else ""
    return time.perf_counter() - start, summary.strip("= "), failed, slowest.strip("= \n"), reports


def failure_reports(output: str, limit: int = 20_000) -> str:
    """pytest's FAILURES section (tracebacks and captured output), so that a failure seen once under load can be
    understood afterwards; its end is kept when it is longer than ``limit`` characters."""
    match = re.search(r"^=+ FAILURES =+$(.*?)(?=^=+ (?:warnings summary|slowest|short test summary))", output,
                      re.M | re.S)
    reports = match.group(1).strip() if match else output.strip()
    return reports if len(reports) <= limit else "[...]\n" + reports[-limit:]


def _stop(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside the suite")
    parser.add_argument("--max-minutes", type=float, default=90)
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=args.max_minutes * 60)])
            for _ in range(args.busy)]
    failures: dict[str, int] = {}
    deadline = time.monotonic() + args.max_minutes * 60
    completed = 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(f"commit {commit or 'unknown'}: {args.runs} runs of the whole suite beside {args.busy} busy processes",
          flush=True)
    try:
        for i in range(1, args.runs + 1):
            if time.monotonic() > deadline:
                print(f"time budget of {args.max_minutes:g} minutes spent: no further run started", flush=True)
                break
            seconds, summary, failed, slowest, reports = run_suite()
            for name in failed:
                failures[name] = failures.get(name, 0) + 1
            completed = i
            verdict = f"; FAILED {', '.join(failed)}" if failed else ""
            print(f"run {i}/{args.runs}: {seconds:.0f} s, {summary}{verdict}", flush=True)
            if reports:
                print(f"failures of run {i}:\n{reports}\nend of the failures of run {i}", flush=True)
            if i == 1 and slowest:
                print("slowest tests of run 1:\n" + slowest, flush=True)
    except KeyboardInterrupt:
        print(f"stopped during run {completed + 1}: that run is not counted", flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"{completed} of {args.runs} runs completed under {args.busy} busy processes: "
          + ("no failure" if not failures else "; ".join(f"{n} failed {c} time(s)" for n, c in failures.items())))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
