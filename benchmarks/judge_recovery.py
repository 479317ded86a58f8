"""How the judge comes through an outage and through failed batches, against the loopback server: the figures the
issue on the judge's reliability asks for (time to stop on a dead endpoint, judgments kept, judgments recovered by
one re-run, requests sent after the server comes back).

    .venv/bin/python benchmarks/judge_recovery.py        # about a minute; prints a Markdown table

Each scenario judges the same 612 score items (the size of the tiny book's pool) into a fresh cache in a scratch
folder.  The outage runs use the judge's default retry and stop settings; only the base URL points at the server.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # standin/ (the loopback OpenAI-compatible server)

from psyco_utils.judge import JudgeConfig, ScoreItem, make_judge  # noqa: E402
from psyco_utils.judge.openai_backend import EndpointDown  # noqa: E402
from standin.openai_server import FakeOpenAI  # noqa: E402

N = 612
ITEMS = [ScoreItem(f"Client statement {i}: I have felt low and tired for weeks and cannot focus at work.",
                   "It sounds exhausting. What have the last weeks been like for you?") for i in range(N)]


def config(base_url: str, **kw) -> JudgeConfig:
    return JudgeConfig(backend="openai", model="gpt-4o-mini", base_url=base_url, estimate_above=10**6, **kw)


def ok_count(judge) -> int:
    return judge.cache.summary()["ok"]


def dead_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def outage(work: Path, kind: str) -> dict:
    """100 judgments answered, then the endpoint refuses connections (or answers only HTTP 500); the server back."""
    path = work / f"outage-{kind}.sqlite"
    with FakeOpenAI() as server:
        make_judge(config(server.base_url), path).score_many(ITEMS[:100], progress=False)
        if kind == "500":
            server.fault_rate, server.faults = 1.0, ("500",)
            url = server.base_url
        else:
            url = dead_endpoint()
        judge = make_judge(config(url), path)
        start = time.perf_counter()
        try:
            judge.score_many(ITEMS, progress=False)
            stopped, message = None, "did not stop"
        except EndpointDown as exc:
            stopped, message = time.perf_counter() - start, str(exc)
        kept = ok_count(judge)
        failed_rows = judge.cache.summary()["failed"]
        server.fault_rate = 0.0
        before = server.chat_requests
        again = make_judge(config(server.base_url), path).score_many(ITEMS, progress=False)
        return {"scenario": f"outage ({'connection refused' if kind != '500' else 'HTTP 500 only'})",
                "time to stop (s)": f"{stopped:.1f}" if stopped is not None else message,
                "attempts before the stop": judge.usage()["api_attempts"], "judgments kept": kept,
                "failed rows in the cache": failed_rows, "re-run requests": server.chat_requests - before,
                "unanswered before the re-run": N - kept,
                "complete after one re-run": sum(r.status == "ok" for r in again)}


def batch(work: Path, scenario: str, **server_kw) -> dict:
    path = work / f"batch-{scenario}.sqlite"
    with FakeOpenAI(**server_kw) as server:
        cfg = config(server.base_url, use_batch_api=True, batch_poll_s=0.01)
        first = make_judge(cfg, path).score_many(ITEMS, progress=False)
        failed = sum(r.status == "failed" for r in first)
        server.batch_end_status, server.batch_fault_rate = "completed", 0.0
        n_batches = len(server.batches)
        again = make_judge(cfg, path).score_many(ITEMS, progress=False)
        resent = sum(len(server.files[server.batches[b]["input"]].decode().splitlines())
                     for b in list(server.batches)[n_batches:])
        return {"scenario": scenario, "failed on the first run": failed, "lines in the re-run's batch": resent,
                "recovered by one re-run": sum(r.status == "ok" for r in again) - (N - failed),
                "complete after one re-run": sum(r.status == "ok" for r in again)}


def table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-not-a-key")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        print(table([outage(work, "refused"), outage(work, "500")]))
        print()
        print(table([batch(work, "failed batch (token limit)", batch_end_status="failed"),
                     batch(work, "expired batch", batch_end_status="expired"),
                     batch(work, "10% failed lines", batch_fault_rate=0.1, seed=11)]))


if __name__ == "__main__":
    main()
