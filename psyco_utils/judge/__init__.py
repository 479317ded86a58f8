"""The seven-principle judge: one interface, two operations, two backends, one cache.

* ``score``: rate one response to a client statement on each principle (integers 1 to 5) with a short rationale;
* ``compare``: say which of two responses is better on each principle and overall (A, B or tie).

Backends: ``rubric`` (offline and deterministic, from surface cues: :mod:`psyco_utils.judge.rubric`; the tiny
profile) and ``openai`` (any OpenAI-compatible endpoint: :mod:`psyco_utils.judge.openai_backend`, with a Batch API
mode in :mod:`psyco_utils.judge.batch`).  Every result goes into the SQLite cache (:mod:`psyco_utils.judge.cache`)
as soon as it is known, so a re-run sends no requests and a killed run resumes.  Chapter 01 uses the same client for
LLM theme labels (:meth:`Judge.classify_many`) and for pool responses from API models (:func:`make_chat_client`);
chapter 02 "Judging" scores the pool; chapter 06 compares policies with a reference.

    judge = make_judge(cfg.judge, cache_path=RunLayout(run).judgments)
    results = judge.score_many([ScoreItem(statement, response), ...])
    verdicts = judge.compare_many([CompareItem(statement, response_a, response_b), ...])
    both = judge.judge_together({"scores": [ScoreItem(...)], "comparisons": [CompareItem(...)]})
    judge.usage()

A failure is not an answer: a re-run sends the failed judgments again (``judge.retry_failed``), and
:func:`judged_set_report` says how complete a judged set is and what to run next.  An endpoint that stops answering
ends the run with :class:`EndpointDown` (``judge.stop_after_consecutive_errors``).  With ``PSYCO_PROGRESS_FILE`` set,
progress goes to that file (:mod:`psyco_utils.judge.progress`) instead of a progress bar.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from ..principles import PRINCIPLE_KEYS, PROMPT_VERSION, rubric_text
from .cache import JudgmentCache, cache_key
from .config import JudgeConfig
from .progress import PROGRESS_FILE_ENV, Progress
from .rubric import RUBRIC_VERSION, rubric_compare, rubric_features, rubric_score
from .schemas import CompareItem, CompareResult, ScoreItem, ScoreResult
from .transport import EndpointDown, Task, resolve

__all__ = ["CompareItem", "CompareResult", "EndpointDown", "Judge", "JudgeConfig", "ScoreItem", "ScoreResult",
           "estimate_judge_cost", "judged_set_report", "make_chat_client", "make_judge", "rubric_features"]

#: Version of the classification prompt's cache keys (theme labels do not depend on the judge's rubric).
CLASSIFY_VERSION = "classify-v1"

# Typical answer lengths in tokens, for the cost estimate: a two-or-three-sentence rationale plus the JSON fields.
_COMPLETION_TOKENS = {"score": 160, "compare": 190, "classify": 12}
_CHARS_PER_TOKEN = 4
_RUBRIC_COMMIT_EVERY = 256


class Judge:
    """Score, compare and classify through the configured backend, every result cached before it is returned.

    Made by :func:`make_judge`.  Results come back in the order of the items; a failed judgment has status
    "failed" and its reason in ``error`` (it is kept in the cache, with the history of its failures, and sent again
    on the next call unless ``judge.retry_failed`` is false).
    Identical items are judged once.  The endpoint's URL is not part of the cache key: the same model name behind
    another URL is taken to be the same model.
    """

    def __init__(self, config: JudgeConfig, cache_path: str | Path):
        self.config = config
        self.cache = JudgmentCache(cache_path)
        self._counts: Counter = Counter()
        if config.backend == "openai":
            from .openai_backend import OpenAIBackend

            self._backend = OpenAIBackend(config)
            self.model, self.prompt_version = config.model, PROMPT_VERSION
        else:
            self._backend = None
            self.model, self.prompt_version = RUBRIC_VERSION, RUBRIC_VERSION

    def __repr__(self) -> str:
        return f"Judge(backend={self.config.backend!r}, model={self.model!r}, cache={str(self.cache.path)!r})"

    def close(self) -> None:
        """Close the cache's database connection (everything is already committed)."""
        self.cache.close()

    # ------------------------------------------------------------------ requests, keys and the cache

    def _request(self, kind: str, item) -> tuple[str, object]:
        """(cache key, payload): the request body for the API, or the item itself for the rubric judge."""
        if self._backend is not None:
            messages = (self._backend.score_messages(item) if kind == "score"
                        else self._backend.compare_messages(item))
            params = self._backend.params(kind)
            key = cache_key("openai", self.model, self.prompt_version, kind, messages, params)
            return key, self._backend.body(kind, messages, params=params)
        if kind == "score":
            messages = [{"role": "user", "content": item.statement}, {"role": "assistant", "content": item.response}]
            params = {}
        else:
            messages = [{"role": "user", "content": item.statement},
                        {"role": "assistant", "content": item.response_a},
                        {"role": "assistant", "content": item.response_b}]
            params = {"tie_margin": self.config.tie_margin}
        if not self.config.length_instructions:  # a different judgment; the default keeps the keys it always had
            params = {**params, "length_instructions": False}
        return cache_key("rubric", self.model, self.prompt_version, kind, messages, params), item

    def _resolve(self, tasks: list[Task], progress: bool, retry_failed: bool | None) -> tuple[dict[str, dict], set[str]]:
        """The cache row of every request of every task, judging the missing ones and (by default) those that failed
        before, all tasks together (:func:`~psyco_utils.judge.transport.resolve`); returns rows by key and the keys
        judged now."""
        retry_failed = self.config.retry_failed if retry_failed is None else retry_failed
        progress = progress and not os.environ.get(PROGRESS_FILE_ENV)  # psyco-book shows the progress line instead
        return resolve(self.cache, tasks, retry_failed, self._counts, lambda todo: self._judge(todo, progress))

    def _judge(self, tasks: list[Task], progress: bool) -> None:
        if self._backend is None:
            for task in tasks:
                self._judge_offline(task, progress)
            return
        for task in tasks:
            paid = self.cache.pending_batch_keys(self.model, task.kind) if self.config.use_batch_api else set()
            unpaid = [body for key, body in task.requests if key not in paid]
            if len(unpaid) > self.config.estimate_above:
                _say(self._estimate_line(task.kind, unpaid))
        self._backend.run(tasks, self.cache, progress, counts=self._counts)

    def _judge_offline(self, task: Task, progress: bool) -> None:
        batch = []
        tracker = Progress(task.name, len(task.requests))
        for key, item in tqdm(task.requests, desc=f"rubric {task.kind}",
                              disable=not progress or len(task.requests) < 500, mininterval=1.0):
            if task.kind == "score":
                ratings, rationale = rubric_score(item.statement, item.response, self.config.length_instructions)
                result = {"rationale": rationale, **ratings}
            else:
                per, overall, rationale = rubric_compare(item.statement, item.response_a, item.response_b,
                                                         self.config.tie_margin, self.config.length_instructions)
                result = {"rationale": rationale, **per, "overall": overall}
            batch.append((key, {"backend": "rubric", "model": self.model, "kind": task.kind, "status": "ok",
                                "result": result}))
            tracker.add("ok")
            if len(batch) >= _RUBRIC_COMMIT_EVERY:
                self.cache.put_many(batch)
                batch = []
        if batch:
            self.cache.put_many(batch)
        tracker.finish()
        n = len(task.requests)
        self._counts.update({"sent": n, "attempts": n, "ok": n})

    # ------------------------------------------------------------------ the operations

    def judge_together(self, tasks: dict[str, list], progress: bool = True, retry_failed: bool | None = None
                       ) -> dict[str, list]:
        """Several lists of judgments at once, by task name: ``{"scoring pool responses": [ScoreItem, ...],
        "swap check, chosen first": [CompareItem, ...], ...}`` -> the results of each list, in its order.

        Online, all the requests share one pool of connections; in Batch API mode each task is its own batch and
        all are submitted together and awaited together (one wait where there would be several).  Each list holds
        items of one kind.  A failed judgment is sent again unless ``retry_failed`` (default: the config's
        ``retry_failed``) is false.  Raises :class:`EndpointDown` when the endpoint stops answering.
        """
        prepared = []
        for name, items in tasks.items():
            kinds = {type(item) for item in items}
            if not kinds <= {ScoreItem, CompareItem} or len(kinds) > 1:
                raise TypeError(f"task {name!r} must hold only ScoreItem or only CompareItem objects")
            kind = "compare" if kinds == {CompareItem} else "score"
            prepared.append(Task(name, kind, [self._request(kind, item) for item in items]))
        rows, fresh = self._resolve(prepared, progress, retry_failed)
        return {task.name: [self._result(task.kind, rows[key], key not in fresh) for key, _ in task.requests]
                for task in prepared}

    @staticmethod
    def _result(kind: str, row: dict, from_cache: bool) -> ScoreResult | CompareResult:
        r = row["result"]
        if kind == "score":
            if row["status"] != "ok":
                return ScoreResult(None, "", "failed", row["error"], from_cache)
            return ScoreResult({k: int(r[k]) for k in PRINCIPLE_KEYS}, r.get("rationale", ""), "ok", None,
                               from_cache)
        if row["status"] != "ok":
            return CompareResult(None, None, "", "failed", row["error"], from_cache)
        return CompareResult({k: r[k] for k in PRINCIPLE_KEYS}, r["overall"], r.get("rationale", ""), "ok", None,
                             from_cache)

    def score_many(self, items: list[ScoreItem], progress: bool = True, retry_failed: bool | None = None,
                   task: str = "scoring responses") -> list[ScoreResult]:
        """Rate each response on the seven principles, 1 to 5, with a rationale (chapter 02 "Judging").

        Cached judgments are returned without a request (``from_cache=True``); before more than
        ``config.estimate_above`` uncached API requests the estimated cost is printed.  A judgment that failed
        before is sent again unless ``retry_failed`` (default: the config's) is false.  ``task`` names the work in
        the live progress file.
        """
        return self.judge_together({task: list(items)}, progress, retry_failed)[task]

    def compare_many(self, items: list[CompareItem], progress: bool = True, retry_failed: bool | None = None,
                     task: str = "comparing responses") -> list[CompareResult]:
        """Compare two responses per principle and overall: "A", "B" or "tie" (chapter 02's position-swap check
        and chapter 06's win rates, which call it in both orders)."""
        items = list(items)
        if not items:
            return []
        if not all(isinstance(item, CompareItem) for item in items):
            raise TypeError("compare_many takes CompareItem objects")
        return self.judge_together({task: items}, progress, retry_failed)[task]

    def classify_many(self, texts: list[str], labels: list[str], instructions: str, progress: bool = True,
                      retry_failed: bool | None = None) -> list[str | None]:
        """One label from ``labels`` per text, following ``instructions`` (chapter 01: LLM theme labels in the
        colab and paper profiles); None where the judgment failed (its reason is in the cache)."""
        if self._backend is None:
            raise ValueError("the rubric judge cannot label themes: offline profiles use the keyword labeller "
                             "(data.theme_labeller: keyword); LLM labels need judge.backend: openai")
        if not labels:
            raise ValueError("classify_many needs at least one label")
        labels = list(labels)
        params = self._backend.params("classify", labels)
        requests = []
        for text in texts:
            messages = self._backend.classify_messages(text, labels, instructions)
            key = cache_key("openai", self.model, CLASSIFY_VERSION, "classify", messages, params)
            requests.append((key, self._backend.body("classify", messages, params=params)))
        rows, _ = self._resolve([Task("labelling themes", "classify", requests, labels)], progress, retry_failed)
        return [rows[key]["result"]["label"] if rows[key]["status"] == "ok" else None for key, _ in requests]

    # ------------------------------------------------------------------ accounting

    def usage(self) -> dict:
        """What this judge did, and what its cache holds (chapter 02 shows it after scoring the pool).

        This session: ``requested`` judgments, ``cache_hits``, ``requests_sent`` (judgments computed by the rubric
        judge or sent to the API), ``api_attempts`` (HTTP requests, retries and requests in flight at a stop
        included), ``failed_now``.  The cache (every session, every model in the file): ``cache_rows``,
        ``cache_failed`` (judgments whose latest outcome is a failure), ``failures_by_reason``,
        ``failures_recorded`` (every failure ever recorded, later successes included), total
        ``prompt_tokens``, ``completion_tokens``, ``cached_tokens`` and ``cost_usd``, and ``per_model`` with the
        same figures for each model.
        """
        summary = self.cache.summary()
        per_model = summary["per_model"]
        total = {f: sum(m[f] for m in per_model.values())
                 for f in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")}
        return {"backend": self.config.backend, "model": self.model,
                "requested": self._counts["requested"], "cache_hits": self._counts["cache_hits"],
                "requests_sent": self._counts["sent"], "api_attempts": self._counts["attempts"],
                "failed_now": self._counts["failed"],
                "cache_rows": summary["rows"], "cache_failed": summary["failed"],
                "prompt_tokens": total["prompt_tokens"], "completion_tokens": total["completion_tokens"],
                "cached_tokens": total["cached_tokens"], "cost_usd": round(total["cost_usd"], 4),
                "failures_by_reason": summary["failures_by_reason"],
                "failures_recorded": summary["failures_recorded"], "per_model": per_model}

    def estimate_cost(self, n_score: int = 0, n_compare: int = 0, avg_statement_chars: float = 500,
                      avg_response_chars: float = 900) -> dict:
        """Tokens and US dollars for ``n_score`` score and ``n_compare`` compare requests of typical lengths
        (chapter 02 before a large run; the reproducibility chapter for the colab and paper profiles).
        See :func:`estimate_judge_cost`; the offline rubric judge costs nothing."""
        return estimate_judge_cost(self.config, n_score, n_compare, avg_statement_chars, avg_response_chars)

    def _estimate_line(self, kind: str, bodies: list[dict]) -> str:
        chars = [sum(len(m["content"]) for m in body["messages"]) for body in bodies]
        system = [len(body["messages"][0]["content"]) if body["messages"][0]["role"] == "system" else 0
                  for body in bodies]
        estimate = _estimate(self.config, len(bodies), sum(chars) / _CHARS_PER_TOKEN,
                             sum(system) / _CHARS_PER_TOKEN, _COMPLETION_TOKENS.get(kind, 160) * len(bodies))
        mode = "Batch API, half price" if self.config.use_batch_api and kind in ("score", "compare") else "online"
        cost = estimate["cost_usd_batch"] if mode.startswith("Batch") else estimate["cost_usd"]
        return (f"judge: {len(bodies):,} uncached {kind} requests to {self.config.model} ({mode}): about "
                f"{estimate['prompt_tokens']:,} prompt tokens ({estimate['cached_prompt_tokens']:,} of them the "
                f"cacheable rubric) and {estimate['completion_tokens']:,} completion tokens; estimated cost "
                f"${cost:,.2f} (${estimate['cost_usd_no_prompt_cache']:,.2f} if no prompt is cached)")


def _say(line: str) -> None:
    """A line for the reader: Markdown in a notebook (it wraps with the page; dollar signs are not maths), printed
    in a terminal."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython comes with the book's dependencies
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(line.replace("$", "\\$")))
    else:
        print(line)


def _estimate(config: JudgeConfig, requests: int, prompt_tokens: float, cacheable_tokens: float,
              completion_tokens: float) -> dict:
    prompt, cached, completion = int(prompt_tokens), int(cacheable_tokens), int(completion_tokens)
    if config.backend != "openai":
        return {"requests": requests, "prompt_tokens": prompt, "cached_prompt_tokens": 0,
                "completion_tokens": completion, "cost_usd": 0.0, "cost_usd_no_prompt_cache": 0.0,
                "cost_usd_batch": 0.0}
    c = config
    uncached_cost = (prompt * c.price_input_per_mtok + completion * c.price_output_per_mtok) / 1e6
    cost = ((prompt - cached) * c.price_input_per_mtok + cached * c.price_cached_input_per_mtok
            + completion * c.price_output_per_mtok) / 1e6
    return {"requests": requests, "prompt_tokens": prompt, "cached_prompt_tokens": cached,
            "completion_tokens": completion, "cost_usd": round(cost, 2),
            "cost_usd_no_prompt_cache": round(uncached_cost, 2), "cost_usd_batch": round(uncached_cost / 2, 2)}


def estimate_judge_cost(config: JudgeConfig, n_score: int = 0, n_compare: int = 0, avg_statement_chars: float = 500,
                        avg_response_chars: float = 900) -> dict:
    """Token and dollar estimate for a judge run, from the fixed rubric's length, typical item lengths (about 4
    characters per token) and typical answer lengths (chapter 02, and the reproducibility chapter's budget table).

    ``cost_usd`` assumes the rubric (the system prompt) is served from the provider's prompt cache after the first
    request; ``cost_usd_no_prompt_cache`` is the upper bound without it; ``cost_usd_batch`` is the Batch API's half
    price (no prompt cache assumed).  The rubric backend costs nothing.
    """
    from .openai_backend import COMPARE_TASK, SCORE_TASK

    framing = 60  # the labels around the statement and responses, and the chat format's own tokens
    system_score = (len(rubric_text()) + len(SCORE_TASK) + 2) / _CHARS_PER_TOKEN
    system_compare = (len(rubric_text()) + len(COMPARE_TASK) + 2) / _CHARS_PER_TOKEN
    prompt = (n_score * (system_score + framing + (avg_statement_chars + avg_response_chars) / _CHARS_PER_TOKEN)
              + n_compare * (system_compare + framing
                             + (avg_statement_chars + 2 * avg_response_chars) / _CHARS_PER_TOKEN))
    cacheable = n_score * system_score + n_compare * system_compare
    completion = n_score * _COMPLETION_TOKENS["score"] + n_compare * _COMPLETION_TOKENS["compare"]
    return _estimate(config, n_score + n_compare, prompt, cacheable, completion)


_OUTAGE_REASONS = {"connection error", "timeout", "server error", "rate limited", "interrupted"}


def judged_set_report(results: list, what: str, config: JudgeConfig, rerun: str = "run the chapter again") -> dict:
    """How complete a judged set is (chapter 02 after scoring the pool; any chapter that judges).

    Returns ``asked``, ``answered``, ``failed``, ``failed_share``, ``by_reason`` (the reason before the first colon
    of each error, with its count), ``complete`` (the failed share is within ``config.max_failed_share``) and a
    ``message`` that says how many failed, why, and what to do next (``rerun`` names the command).
    """
    asked = len(results)
    reasons = Counter((r.error or "unknown").split(":", 1)[0] for r in results if r.status != "ok")
    failed = sum(reasons.values())
    share = failed / asked if asked else 0.0
    complete = share <= config.max_failed_share
    if not failed:
        message = f"all {asked:,} {what} judged"
    else:
        why = ", ".join(f"{reason} {n:,}" for reason, n in reasons.most_common())
        message = (f"{failed:,} of {asked:,} {what} have no judgment ({share:.1%}; at most "
                   f"{config.max_failed_share:.0%} may fail, judge.max_failed_share): {why}. ")
        if config.retry_failed:
            when = " once the endpoint answers again" if set(reasons) & _OUTAGE_REASONS else ""
            batch = " (in a new batch)" if config.use_batch_api else ""
            message += (f"To fill the gap, {rerun}{when}: the failed judgments are sent again{batch} and the "
                        "answered ones come from the cache.")
        else:
            message += (f"This profile keeps failed judgments as they are (judge.retry_failed: false): set it to "
                        f"true and {rerun} to send them again.")
    return {"asked": asked, "answered": asked - failed, "failed": failed, "failed_share": share,
            "by_reason": dict(reasons.most_common()), "complete": complete, "message": message}


def make_judge(config: JudgeConfig, cache_path: str | Path) -> Judge:
    """The judge a profile asks for, with its SQLite cache at ``cache_path`` (chapters 01, 02 and 06).

    The ``openai`` backend needs the API key in the environment variable ``config.api_key_env``; it is read here and
    never stored anywhere else.
    """
    return Judge(config, cache_path)


def make_chat_client(config: JudgeConfig, cache_path: str | Path):
    """A cached OpenAI-compatible chat client (chapter 01: pool responses from API models; chapter 06: reference
    responses): ``chat.complete_many(list_of_message_lists, max_tokens, temperature, n=1, seed=None)`` returns one
    text per message list, or None where the request failed (the failure and its reason are in the cache)."""
    from .openai_backend import CachedChatClient

    return CachedChatClient(config, cache_path)
