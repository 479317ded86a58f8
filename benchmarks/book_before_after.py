"""The tiny book, cold and warm, at an earlier commit and at this tree, in one run on the same machine.

    .venv/bin/python benchmarks/book_before_after.py --before 2168cb6     # about 20 minutes

Cold: an empty runs folder (the tiny world is built, every model trained).  Warm: the same folder again.  The earlier
commit is checked out into a scratch worktree (benchmarks/_work/before/) and run with this environment's packages;
the runs folders are scratch too.  Prints a Markdown table of seconds per chapter; nothing is timed in a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work" / "before_after"


def book_cold_and_warm(tree: Path, label: str) -> dict:
    """Seconds per chapter and in all, cold then warm, for the book in ``tree``."""
    runs, executed = WORK / f"runs_{label}", WORK / f"executed_{label}"
    shutil.rmtree(runs, ignore_errors=True)
    env = {**os.environ, "PSYCO_RUNS_DIR": str(runs), "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    result = {}
    for state in ("cold", "warm"):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "psyco_book", "run", "--profile", "tiny", "--executed-dir",
                        str(executed)], check=True, env=env, cwd=tree, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        timings = json.loads((executed / "timings_tiny.json").read_text())
        result[state] = {"total": time.perf_counter() - start,
                         **{chapter: entry["seconds"] for chapter, entry in timings.items()}}
        print(f"{label} {state}: {result[state]['total']:.1f} s", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the earlier commit")
    args = parser.parse_args()
    before_tree = WORK / "before"
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(before_tree), args.before], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    try:
        results = {args.before: book_cold_and_warm(before_tree, "before"), after: book_cold_and_warm(ROOT, "after")}
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT, check=False)
    chapters = [c for c in results[after]["cold"] if c != "total"]
    print(f"\n| chapter | cold, {args.before} | cold, {after} | warm, {args.before} | warm, {after} |")
    print("|---|---|---|---|---|")
    for chapter in [*chapters, "total"]:
        cells = [results[commit][state].get(chapter) for state in ("cold", "warm") for commit in (args.before, after)]
        print(f"| {'whole book (wall)' if chapter == 'total' else chapter} | "
              + " | ".join("-" if c is None else f"{c:.1f} s" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
