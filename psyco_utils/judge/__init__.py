"""The seven-principle judge: one interface, two operations, two backends, one cache.

* ``score``: rate one response to a client statement on each principle (integers 1 to 5) with a short rationale;
* ``compare``: say which of two responses is better on each principle and overall (A, B or tie).

Backends: ``rubric`` (offline, deterministic; the tiny profile) and ``openai`` (any OpenAI-compatible endpoint).
Every result goes into the SQLite cache (:mod:`psyco_utils.judge.cache`) before it is returned.  Chapter 01 uses the
same client for LLM theme labels and for pool responses from API models (:func:`make_chat_client`); chapter 02 scores
the pool; chapter 06 compares policies with a reference.
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from ..principles import PRINCIPLE_KEYS, PROMPT_VERSION
from .cache import JudgmentCache, cache_key
from .config import JudgeConfig
from .rubric import RUBRIC_VERSION, rubric_compare, rubric_score
from .schemas import CompareItem, CompareResult, ScoreItem, ScoreResult

__all__ = ["CompareItem", "CompareResult", "Judge", "JudgeConfig", "ScoreItem", "ScoreResult", "estimate_judge_cost",
           "make_chat_client", "make_judge"]


class Judge:
    """Score and compare through the configured backend, with every result cached before use."""

    def __init__(self, config: JudgeConfig, cache_path: str | Path):
        self.config = config
        self.cache = JudgmentCache(cache_path)
        self.session = {"requested": 0, "from_cache": 0, "sent": 0}
        if config.backend == "openai":
            from .openai_backend import OpenAIBackend

            self._backend = OpenAIBackend(config)
        else:
            self._backend = None
        self.model = config.model if config.backend == "openai" else RUBRIC_VERSION
        self.prompt_version = PROMPT_VERSION if config.backend == "openai" else RUBRIC_VERSION

    # ------------------------------------------------------------------ requests and keys

    def _score_request(self, item: ScoreItem) -> tuple[list[dict], dict]:
        if self._backend is not None:
            return self._backend.score_messages(item), self._backend.params("score")
        return [{"role": "user", "content": item.statement}, {"role": "assistant", "content": item.response}], {}

    def _compare_request(self, item: CompareItem) -> tuple[list[dict], dict]:
        if self._backend is not None:
            return self._backend.compare_messages(item), self._backend.params("compare")
        return ([{"role": "user", "content": item.statement}, {"role": "assistant", "content": item.response_a},
                 {"role": "assistant", "content": item.response_b}], {"tie_margin": self.config.tie_margin})

    def _run(self, kind: str, items: list, build, compute_offline, progress: bool, retry_failed: bool) -> list[dict]:
        requests = [build(item) for item in items]
        keys = [cache_key(self.config.backend, self.model, self.prompt_version, kind, m, p) for m, p in requests]
        cached = self.cache.get_many(list(dict.fromkeys(keys)))
        todo = [k for k in dict.fromkeys(keys) if k not in cached or (retry_failed and cached[k]["status"] == "failed")]
        index = {k: i for i, k in reversed(list(enumerate(keys)))}
        self.session["requested"] += len(items)
        self.session["from_cache"] += len(items) - sum(1 for k in keys if k in set(todo))
        if todo:
            self.session["sent"] += len(todo)
            if self._backend is None:
                for key in tqdm(todo, desc=f"rubric {kind}", disable=not progress or len(todo) < 500):
                    result = compute_offline(items[index[key]])
                    self.cache.put(key, backend="rubric", model=self.model, kind=kind, status="ok", result=result)
            else:
                if len(todo) > self.config.estimate_above:
                    estimate = self.estimate_cost(**{f"n_{kind}": len(todo)})
                    print(f"judge: {len(todo):,} uncached {kind} requests to {self.config.model}; "
                          f"estimated cost ${estimate['cost_usd']:.2f} ({estimate['prompt_tokens']:,} prompt + "
                          f"{estimate['completion_tokens']:,} completion tokens)")
                self._backend.run(kind, [(k, requests[index[k]][0]) for k in todo], self.cache, progress)
            cached = self.cache.get_many(list(dict.fromkeys(keys)))
        fresh = set(todo)
        return [{**cached[k], "from_cache": k not in fresh} for k in keys]

    # ------------------------------------------------------------------ the two operations

    def score_many(self, items: list[ScoreItem], progress: bool = True, retry_failed: bool = False) -> list[ScoreResult]:
        """Rate each response on the seven principles (chapter 02 "Judging")."""

        def offline(item):
            ratings, rationale = rubric_score(item.statement, item.response)
            return {**ratings, "rationale": rationale}

        rows = self._run("score", items, self._score_request, offline, progress, retry_failed)
        results = []
        for row in rows:
            if row["status"] == "ok":
                r = row["result"]
                results.append(ScoreResult({k: int(r[k]) for k in PRINCIPLE_KEYS}, r.get("rationale", ""), "ok",
                                           None, row["from_cache"]))
            else:
                results.append(ScoreResult(None, "", "failed", row["error"], row["from_cache"]))
        return results

    def compare_many(self, items: list[CompareItem], progress: bool = True,
                     retry_failed: bool = False) -> list[CompareResult]:
        """Compare two responses per principle and overall: A, B or tie (chapters 02 and 06)."""

        def offline(item):
            per, overall, rationale = rubric_compare(item.statement, item.response_a, item.response_b,
                                                     self.config.tie_margin)
            return {**per, "overall": overall, "rationale": rationale}

        rows = self._run("compare", items, self._compare_request, offline, progress, retry_failed)
        results = []
        for row in rows:
            if row["status"] == "ok":
                r = row["result"]
                results.append(CompareResult({k: r[k] for k in PRINCIPLE_KEYS}, r["overall"], r.get("rationale", ""),
                                             "ok", None, row["from_cache"]))
            else:
                results.append(CompareResult(None, None, "", "failed", row["error"], row["from_cache"]))
        return results

    def classify_many(self, texts: list[str], labels: list[str], instructions: str, progress: bool = True) -> list[str | None]:
        """One label per text from ``labels`` (chapter 01: LLM theme labels); failures are None, and recorded."""
        if self._backend is None:
            raise ValueError("the rubric judge cannot label themes: the tiny profile uses the keyword labeller "
                             "(data.theme_labeller: keyword)")
        requests = [self._backend.classify_messages(t, labels, instructions) for t in texts]
        params = self._backend.params("classify", labels=labels)
        keys = [cache_key("openai", self.config.model, PROMPT_VERSION, "classify", m, params) for m in requests]
        todo = [k for k in dict.fromkeys(keys) if k not in self.cache.get_many([k])]
        index = {k: i for i, k in enumerate(keys)}
        if todo:
            self._backend.run("classify", [(k, requests[index[k]]) for k in todo], self.cache, progress, labels=labels)
        rows = self.cache.get_many(list(dict.fromkeys(keys)))
        return [rows[k]["result"]["label"] if rows[k]["status"] == "ok" else None for k in keys]

    # ------------------------------------------------------------------ accounting

    def usage(self) -> dict:
        """This session's requests and cache hits, and the cache's totals: failures by reason, tokens, cost."""
        summary = self.cache.summary()
        total_cost = sum(m["cost_usd"] for m in summary["per_model"].values())
        return {"backend": self.config.backend, "model": self.model, "requested this run": self.session["requested"],
                "answered from cache": self.session["from_cache"],
                "judged now (rubric computed or API requests)": self.session["sent"],
                "cached judgments": summary["rows"], "failed judgments in cache": summary["failed"],
                "cost_usd_total": round(total_cost, 4), "failures_by_reason": summary["failures_by_reason"],
                "per_model": summary["per_model"]}

    def estimate_cost(self, n_score: int = 0, n_compare: int = 0, avg_statement_chars: int = 500,
                      avg_response_chars: int = 900) -> dict:
        """Token and dollar estimate for a run of this judge (see :func:`estimate_judge_cost`)."""
        return estimate_judge_cost(self.config, n_score, n_compare, avg_statement_chars, avg_response_chars)


def estimate_judge_cost(config: JudgeConfig, n_score: int = 0, n_compare: int = 0, avg_statement_chars: int = 500,
                        avg_response_chars: int = 900) -> dict:
    """Token and dollar estimate, from the fixed rubric's length and typical item lengths (4 characters per token);
    the rubric prefix is counted as cached after the first request (chapter 02, and the reproducibility appendix)."""
    from ..principles import rubric_text

    rubric_tokens = len(rubric_text()) // 4 + 120
    score_prompt = rubric_tokens + (avg_statement_chars + avg_response_chars) // 4
    compare_prompt = rubric_tokens + (avg_statement_chars + 2 * avg_response_chars) // 4
    prompt = n_score * score_prompt + n_compare * compare_prompt
    completion = n_score * 160 + n_compare * 190
    cached = (n_score + n_compare) * rubric_tokens if config.backend == "openai" else 0
    c = config
    cost = 0.0 if c.backend == "rubric" else (
        (prompt - cached) * c.price_input_per_mtok + cached * c.price_cached_input_per_mtok
        + completion * c.price_output_per_mtok) / 1e6
    return {"requests": n_score + n_compare, "prompt_tokens": prompt, "completion_tokens": completion,
            "cached_prompt_tokens": cached, "cost_usd": round(cost, 2)}


def make_judge(config: JudgeConfig, cache_path: str | Path) -> Judge:
    """The judge of a profile, with its SQLite cache at ``cache_path`` (chapters 01, 02, 06)."""
    return Judge(config, cache_path)


def make_chat_client(config: JudgeConfig, cache_path: str | Path):
    """A cached OpenAI-compatible chat client for pool responses and references (chapters 01 and 06)."""
    from .openai_backend import CachedChatClient

    return CachedChatClient(config, cache_path)
