"""The judge's live progress, for ``psyco-book``'s progress line: a small JSON file rewritten as work completes.

When the environment variable ``PSYCO_PROGRESS_FILE`` names a file, the judge (score, compare and batch paths)
replaces it atomically, at most about once a second and once at the end, with::

    {"task": "scoring pool responses", "done": 340, "failed": 3, "total": 612, "rate_per_s": 12.5, "cost_usd": 0.42}

``done`` counts the judgments finished so far in this task, failures included; ``failed`` those of them that failed;
``total`` the judgments the task sends (cache hits are not part of it); ``cost_usd`` what they cost so far.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

PROGRESS_FILE_ENV = "PSYCO_PROGRESS_FILE"
MIN_INTERVAL_S = 1.0


def write_progress(task: str, done: int, failed: int, total: int, rate_per_s: float, cost_usd: float) -> None:
    """Replace the progress file (if ``PSYCO_PROGRESS_FILE`` is set) with one JSON object, atomically."""
    path = os.environ.get(PROGRESS_FILE_ENV)
    if not path:
        return
    target = Path(path)
    record = {"task": task, "done": int(done), "failed": int(failed), "total": int(total),
              "rate_per_s": round(float(rate_per_s), 3), "cost_usd": round(float(cost_usd), 6)}
    try:
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        os.replace(temp, target)
    except OSError:  # progress is a courtesy: a missing folder or a full disk must not stop a paid run
        return


class Progress:
    """Counts one task's finished judgments and writes them with :func:`write_progress`, at most once a second."""

    def __init__(self, task: str, total: int):
        self.task, self.total = task, total
        self.done = self.failed = 0
        self.cost_usd = 0.0
        self._started = time.monotonic()
        self._written = 0.0
        self.write(force=True)

    def add(self, status: str, cost_usd: float = 0.0) -> None:
        self.done += 1
        self.failed += status == "failed"
        self.cost_usd += cost_usd
        self.write()

    def set(self, done: int, failed: int) -> None:
        """Counts from elsewhere (a batch's request counts)."""
        self.done, self.failed = done, failed
        self.write()

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < MIN_INTERVAL_S:
            return
        self._written = now
        elapsed = now - self._started
        write_progress(self.task, self.done, self.failed, self.total, self.done / elapsed if elapsed > 0 else 0.0,
                       self.cost_usd)

    def finish(self) -> None:
        self.write(force=True)


__all__ = ["PROGRESS_FILE_ENV", "Progress", "write_progress"]
