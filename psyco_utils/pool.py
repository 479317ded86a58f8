"""The response pool (chapter 01): for each statement, responses from randomly drawn pool generators.

As in the paper, each statement gets ``responses_per_statement`` responses (4) from as many distinct generators,
drawn at random per statement.  A generator is one of:

* ``bundled``: the bundled corpus's response of one style (only for bundled statements);
* ``hf``: a local or hub causal LM at a temperature (``tiny`` is the tiny world's warm-started policy);
* ``openai``: a model behind an OpenAI-compatible endpoint, through the judge package's cached chat client.

Every response is scrubbed of personal data like the statements.  Empty generations are dropped and counted.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .config import PoolGeneratorConfig, ProfileConfig
from .data import load_bundled_corpus, scrub_personal_data


def _bundled_responses() -> dict[tuple[str, str], str]:
    _, responses = load_bundled_corpus()
    return {(r.statement_id, r.style): r.text for r in responses.itertuples()}


def _can_answer(gen: PoolGeneratorConfig, statement, bundled: dict) -> bool:
    if gen.kind != "bundled":
        return True
    return statement.source == "bundled" and (statement.source_id, gen.model) in bundled


def _too_few_generators(statement, able: list[PoolGeneratorConfig], k: int) -> str:
    """The error for a statement fewer than ``k`` generators can answer, with the settings that fix it."""
    names = ", ".join(g.name for g in able) or "none"
    example = next((g for g in able if g.kind == "hf"), None)
    template = (f" (e.g. {{name: {example.model.split('/')[-1]}-t1.0, kind: hf, model: {example.model}, "
                f"temperature: 1.0, max_new_tokens: {example.max_new_tokens}}}, and others at other temperatures)"
                if example else "")
    fewer = f", or set pool.responses_per_statement: {len(able)}" if len(able) >= 2 else ""
    return (f"statement {statement.statement_id}: only {len(able)} pool generators can answer it, need {k} "
            f"(pool.responses_per_statement). Bundled generators answer only statements of the bundled corpus; "
            f"statements of source {statement.source!r} can be answered by: {names}. Fix: add {k - len(able)} more "
            f"generator(s) of kind hf or openai to pool.generators{template}{fewer}.")


def assign_generators(statements: pd.DataFrame, generators: list[PoolGeneratorConfig], k: int, seed: int,
                      bundled: dict | None = None) -> pd.DataFrame:
    """Draw ``k`` distinct generators per statement among those able to answer it (fixed seed)."""
    bundled = _bundled_responses() if bundled is None else bundled
    rng = np.random.default_rng(seed)
    rows = []
    for st in statements.itertuples():
        able = [g for g in generators if _can_answer(g, st, bundled)]
        if len(able) < k:
            raise ValueError(_too_few_generators(st, able, k))
        for gi in sorted(rng.choice(len(able), size=k, replace=False)):
            rows.append({"statement_id": st.statement_id, "generator": able[gi].name})
    return pd.DataFrame(rows)


def build_pool(statements: pd.DataFrame, cfg: ProfileConfig, run_root: Path, chat_client=None,
               progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate the pool: ``(pool, generator_stats)``.

    ``pool`` has one row per response: statement_id, response_id, generator, response, chars.  ``generator_stats``
    has, per generator, the responses asked for, produced, dropped as empty, and the seconds spent.
    """
    from .models import GenerationStats, generate_responses, load_generator, resolve_model_path

    bundled = _bundled_responses()
    gens = {g.name: g for g in cfg.pool.generators}
    plan = assign_generators(statements, cfg.pool.generators, cfg.pool.responses_per_statement, cfg.seed, bundled)
    by_id = statements.set_index("statement_id")
    texts: dict[tuple[str, str], str] = {}
    stats_rows = []
    loaded: dict[str, tuple] = {}
    for name, group in plan.groupby("generator", sort=False):
        gen = gens[name]
        ids = list(group["statement_id"])
        start = time.perf_counter()
        stat = GenerationStats()
        if gen.kind == "bundled":
            outs = [bundled[(by_id.at[i, "source_id"], gen.model)] for i in ids]
        elif gen.kind == "hf":
            path = resolve_model_path(gen.model, cfg, run_root)
            if path not in loaded:
                loaded[path] = load_generator(path, cfg.models)
            model, tok, backend = loaded[path]
            outs = [o[0] for o in generate_responses(
                model, tok, [by_id.at[i, "text"] for i in ids], n=1, temperature=gen.temperature, top_p=gen.top_p,
                max_new_tokens=gen.max_new_tokens, batch_size=cfg.pool.generation_batch_size, seed=cfg.seed,
                backend=backend, progress=progress, stats=stat)]
        else:
            if chat_client is None:
                raise ValueError(f"pool generator {name!r} is an OpenAI-compatible model but no chat client was given")
            messages = [[{"role": "user", "content": by_id.at[i, "text"]}] for i in ids]
            outs = chat_client.complete_many(messages, model=gen.model, max_tokens=gen.max_new_tokens,
                                             temperature=gen.temperature, base_url=gen.base_url)
        empty = 0
        for sid, text in zip(ids, outs):
            if text is None or not str(text).strip():
                empty += 1
                continue
            texts[(sid, name)] = str(text).strip()
        stats_rows.append({"generator": name, "kind": gen.kind, "asked": len(ids), "produced": len(ids) - empty,
                           "dropped_empty_or_failed": empty, "seconds": round(time.perf_counter() - start, 2),
                           "new_tokens": stat.new_tokens, "tokens_per_s": round(stat.tokens_per_second, 1)})
    rows = []
    for sid, name in zip(plan["statement_id"], plan["generator"]):
        if (sid, name) not in texts:
            continue
        clean, _ = scrub_personal_data(texts[(sid, name)])
        rows.append({"statement_id": sid, "response_id": f"{sid}#{name}", "generator": name, "response": clean,
                     "chars": len(clean)})
    return pd.DataFrame(rows), pd.DataFrame(stats_rows)
