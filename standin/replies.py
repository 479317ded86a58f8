"""The loopback server as the stand-in run uses it: plain chat requests get counselling replies of varied quality.

The test server (:class:`standin.openai_server.FakeOpenAI`) answers a plain chat request with an echo of the prompt.
In the stand-in run those requests are the openai pool generator's and the reference model's answers to client
statements, and an echo would score the same under every principle, leaving no pair with a score gap.  Here each
plain chat request is answered with a response of the bundled corpus: the statement's own response when the
statement is a bundled one, another statement's otherwise, in one of the five styles (empathic, generic,
directive, dismissive, rambling) chosen by a hash of the prompt, so the answers vary in quality as real models' do
and the judge's scores have gaps to build pairs from.  Structured-output requests (scores, verdicts, labels) are
answered exactly as by the test server.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from standin.openai_server import FakeOpenAI


@lru_cache(maxsize=1)
def _corpus() -> tuple[dict[str, list[str]], list[str]]:
    from psyco_utils.data import load_bundled_corpus

    statements, responses = load_bundled_corpus()
    text_of = dict(zip(statements["id"], statements["text"]))
    by_statement: dict[str, list[str]] = {}
    for row in responses.sort_values(["statement_id", "style"]).itertuples():
        by_statement.setdefault(text_of.get(row.statement_id, ""), []).append(row.text)
    return by_statement, list(responses.sort_values(["statement_id", "style"])["text"])


def counselling_reply(prompt: str, sample: int = 0) -> str:
    """A bundled response to ``prompt`` (its own when it is a bundled statement), chosen by a hash of the prompt."""
    by_statement, every_response = _corpus()
    digest = hashlib.sha256(f"{sample}\0{prompt}".encode()).digest()
    own = by_statement.get(prompt.strip())
    if own:
        return own[digest[0] % len(own)]
    return every_response[int.from_bytes(digest[:4], "big") % len(every_response)]


class StandInServer(FakeOpenAI):
    """:class:`FakeOpenAI` whose plain chat answers are :func:`counselling_reply` (one per requested choice), and
    which counts what it answered by kind (:meth:`served`), so the stand-in run can tell every paid path was taken."""

    def __init__(self, *args, **kwargs):
        self.answers_by_kind: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def served(self) -> dict[str, int]:
        """Answers given per kind (``principle_scores``, ``principle_verdicts``, ``label``, ``chat``) and the
        number of Batch API jobs."""
        with self.lock:
            return {**self.answers_by_kind, "batches": len(self.batches)}

    def completion(self, body: dict, fault: str | None = None) -> dict:
        out = super().completion(body, fault)
        kind = ((body.get("response_format") or {}).get("json_schema") or {}).get("name") or "chat"
        with self.lock:
            self.answers_by_kind[kind] = self.answers_by_kind.get(kind, 0) + 1
        if body.get("response_format") or fault:
            return out
        user = next((m.get("content") or "" for m in reversed(body.get("messages") or []) if m.get("role") == "user"),
                    "")
        completion_tokens = 0
        for i, choice in enumerate(out["choices"]):
            choice["message"]["content"] = counselling_reply(user, i)
            completion_tokens += len(choice["message"]["content"]) // 4
        usage = out["usage"]
        usage.update(completion_tokens=completion_tokens, total_tokens=usage["prompt_tokens"] + completion_tokens)
        return out
