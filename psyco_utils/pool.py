"""The response pool (chapter 01): for each statement, responses from randomly drawn pool generators.

As in the paper, each statement gets ``responses_per_statement`` responses (4) from as many distinct generators,
drawn at random per statement.  A generator is one of:

* ``bundled``: the bundled corpus's response of one style (only for bundled statements);
* ``hf``: a local or hub causal LM at a temperature (``tiny`` is the tiny world's warm-started policy), generated
  with transformers or, where it is installed and a GPU is present, vLLM (``models.generation_backend``);
* ``openai``: a model behind an OpenAI-compatible endpoint, through the judge package's cached chat client.

Every response is scrubbed of personal data like the statements.  Empty generations are dropped and counted.

**One model in memory at a time.**  The ``hf`` generators are grouped by model: generators that share a model (two
temperatures of one model) and its engine settings are served by one load.  Each model is loaded, runs all its
generators, and is freed before the next one loads: every reference dropped, ``gc.collect()``, the CUDA cache
emptied, and a vLLM engine shut down (``LLM.shutdown()`` where the installed vLLM has it, else its engine core's
``shutdown()``) with vLLM's model-parallel and distributed state destroyed, as vLLM's own tests do between engines.
The peak is therefore the largest single generator, not the sum of all of them.

**Large generators.**  A model too large for one GPU (the paper's Llama-3.1-70B-Instruct: about 140 GB in bf16) runs
in one of two ways:

* through vLLM with ``tensor_parallel_size: N`` on the generator (4 or 8 for a 70B on 80 GB GPUs), which splits it
  across N GPUs of this machine; ``gpu_memory_utilization`` sets the share of each GPU's memory the engine may take
  (default ``PSYCO_VLLM_GPU_MEMORY`` or 0.45; with one engine at a time 0.85 or more is safe).  Without vLLM on a GPU
  machine such a generator is an error that names both fixes, rather than a model loaded onto one GPU.  On a
  machine without a GPU (the stand-in run's tiny stand-ins) the setting has nothing to split and is ignored;
* through an OpenAI-compatible server that already serves it (``vllm serve meta-llama/Llama-3.1-70B-Instruct
  --tensor-parallel-size 8`` on another machine, or a hosted endpoint): ``kind: openai`` with ``model`` the name the
  server knows and ``base_url`` its address (``http://host:8000/v1``); the key comes from ``OPENAI_API_KEY``.

**Resume.**  A long pool (about 106,000 responses at paper scale) survives a crash or a lost Colab runtime:

* an ``hf`` generator's responses are saved per batch of ``generation_batch_size`` statements, as soon as the batch
  is drawn, under ``runs/<profile>/pool/partial/<generator>-<fingerprint>/batch_NNNNN.json``.  The fingerprint
  covers what the responses are drawn from: the model's files (a hub id as written), the sampling settings, the
  statements assigned to the generator (ids and texts, in order), the seed, the batch size, ``models.dtype`` and the
  torch and transformers versions.  It leaves out how they are run (backend, GPUs, memory share), so a run that ran
  out of memory can resume with a smaller share.  Batch ``k`` is drawn with seed ``seed + k``, so a resumed run
  draws exactly the batches that are missing and ends with the same pool as an uninterrupted one (same backend and
  hardware);
* an ``openai`` generator's completions are each cached in ``judgments.sqlite`` by the chat client before they are
  used; a re-run sends only the requests that have no answer yet;
* ``bundled`` responses are read from the package.

A completed pool keeps its partial files: they are the cache that makes a re-run of chapter 01 (or one that failed
after the pool) skip generation; ``generator_stats`` says how many responses came from them (``from_checkpoint``).
When a generator's settings change, its partials of other fingerprints are removed as it starts.  With
``reuse_trained_models: false`` partials are ignored and overwritten, like every other saved result.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .config import PoolGeneratorConfig, ProfileConfig
from .data import load_bundled_corpus, scrub_personal_data
from .layout import RunLayout

PARTIAL_FORMAT = 1
_VERSIONED = ("torch", "transformers")


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


# ------------------------------------------------------------------------------------------ one generator at a time


@dataclass(frozen=True)
class PoolEvent:
    """What :func:`build_pool` reports to its ``on_event`` hook, in order, as it happens.

    ``load``: a model is about to be loaded; ``loaded``: it is (``model`` is the loaded object, on this event only);
    ``batch``: one batch of one generator is drawn and saved; ``freed``: the model is released.  ``generators`` names
    the generators the model serves (the one generator for ``batch``).
    """

    kind: str
    generators: tuple[str, ...]
    model_path: str
    batch: int | None = None
    prompts: int = 0
    model: Any = None


@dataclass
class LoadedGenerator:
    """A loaded generation model, held in one place so that :func:`release_generator` can drop it."""

    model: Any
    tokenizer: Any
    backend: str


def release_generator(loaded: LoadedGenerator) -> None:
    """Free a generator: its references dropped, a vLLM engine shut down, garbage collected, the CUDA cache emptied."""
    from .models import release_unused_memory

    model, loaded.model, loaded.tokenizer = loaded.model, None, None
    if model is not None and loaded.backend == "vllm":
        shutdown_vllm(model)
    del model
    release_unused_memory()


def shutdown_vllm(llm) -> None:
    """Shut a ``vllm.LLM`` down: ``LLM.shutdown()`` where the installed vLLM has it, else its engine core's
    ``shutdown()`` (vLLM V1); then vLLM's model-parallel groups and distributed environment are destroyed."""
    shutdown = getattr(llm, "shutdown", None)
    if shutdown is None:
        shutdown = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "shutdown", None)
    if callable(shutdown):
        shutdown()
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel
    except ImportError:
        return
    destroy_model_parallel()
    destroy_distributed_environment()


def _planned_backend(cfg: ProfileConfig) -> str:
    """The backend :func:`psyco_utils.models.load_generator` will choose."""
    from .models import vllm_available

    backend = cfg.models.generation_backend
    return "vllm" if backend == "vllm" or (backend == "auto" and vllm_available()) else "hf"


def check_generator_fits(gen: PoolGeneratorConfig, backend: str) -> None:
    """A generator split across GPUs needs vLLM and that many GPUs: say which is missing and how to fix it, before a
    model too large for one GPU is loaded onto one."""
    import torch

    from .models import DeviceError

    n = gen.tensor_parallel_size
    if n == 1 or not torch.cuda.is_available():
        return
    serve = (f"or serve it (vllm serve {gen.model} --tensor-parallel-size {n}) and make the generator kind: openai "
             f"with base_url the server's address")
    if backend != "vllm":
        raise DeviceError(f"pool generator {gen.name!r} has tensor_parallel_size {n}: only vLLM splits a model across "
                          f"GPUs, and generation would use transformers on one GPU. Install vLLM (pip install "
                          f"'psyco-utils[vllm]') with models.generation_backend auto or vllm, {serve}")
    visible = torch.cuda.device_count()
    if visible < n:
        raise DeviceError(f"pool generator {gen.name!r} has tensor_parallel_size {n} but {visible} GPU(s) are "
                          f"visible: run on a machine with {n} GPUs, lower tensor_parallel_size if the model fits on "
                          f"fewer, {serve}")


# ------------------------------------------------------------------------------------------- checkpoints per batch


def generation_fingerprint(gen: PoolGeneratorConfig, ids: list[str], texts: list[str], cfg: ProfileConfig,
                           model_files: str) -> str:
    """The fingerprint of one generator's share of the pool: what its responses are drawn from (see the module)."""
    from .manifest import package_versions

    parts = {"format": PARTIAL_FORMAT, "model_files": model_files, "dtype": cfg.models.dtype, "seed": cfg.seed,
             "sampling": gen.model_dump(include={"kind", "temperature", "top_p", "max_new_tokens"}),
             "batch_size": cfg.pool.generation_batch_size, "versions": package_versions(_VERSIONED),
             "statements": [[i, t] for i, t in zip(ids, texts)]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def partial_dir(run_root: Path, generator: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", generator)
    return RunLayout(run_root).pool_partial / f"{safe}-{key[:16]}"


def _prepare_partial_dir(directory: Path, reuse: bool) -> None:
    """Remove this generator's partials of other fingerprints (and of this one when reuse is off); create the folder."""
    prefix = directory.name[:-17]
    for old in directory.parent.glob(f"{prefix}-*") if directory.parent.is_dir() else []:
        if re.fullmatch(re.escape(prefix) + r"-[0-9a-f]{16}", old.name) and (old != directory or not reuse):
            shutil.rmtree(old)
    directory.mkdir(parents=True, exist_ok=True)


def _read_batch(path: Path, ids: list[str]) -> dict | None:
    """A saved batch, if it holds exactly these statements (else None: it is drawn again)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = record.get("statement_ids") == ids and len(record.get("responses", ())) == len(ids)
    return record if ok else None


def _write_batch(path: Path, record: dict) -> None:
    """Written whole or not at all: a run killed while writing leaves the batch missing, never cut short."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


@dataclass
class _Share:
    """One hf generator's share of the pool: its statements, batches, and the batches saved so far."""

    gen: PoolGeneratorConfig
    ids: list[str]
    texts: list[str]
    directory: Path
    size: int
    saved: dict[int, dict]
    reused: int = 0

    @property
    def batches(self) -> range:
        return range((len(self.ids) + self.size - 1) // self.size)

    @property
    def missing(self) -> list[int]:
        return [b for b in self.batches if b not in self.saved]

    def span(self, batch: int) -> slice:
        return slice(batch * self.size, (batch + 1) * self.size)


def _open_share(gen, ids, by_id, cfg, run_root, model_files: str) -> _Share:
    texts = [by_id.at[i, "text"] for i in ids]
    directory = partial_dir(run_root, gen.name, generation_fingerprint(gen, ids, texts, cfg, model_files))
    _prepare_partial_dir(directory, cfg.reuse_trained_models)
    share = _Share(gen, ids, texts, directory, cfg.pool.generation_batch_size, {})
    for b in share.batches:
        record = _read_batch(directory / f"batch_{b:05d}.json", ids[share.span(b)])
        if record is not None:
            share.saved[b] = record
    share.reused = sum(len(r["statement_ids"]) for r in share.saved.values())
    return share


def _draw_missing(share: _Share, loaded: LoadedGenerator, path: str, cfg: ProfileConfig, emit, progress: bool
                  ) -> None:
    """Draw and save every missing batch of one generator (batch ``k`` with seed ``cfg.seed + k``)."""
    from tqdm.auto import tqdm

    from .judge.progress import write_progress
    from .models import GenerationStats, generate_responses

    gen, drawn, spent = share.gen, 0, 0.0
    for b in tqdm(share.missing, desc=gen.name, disable=not progress):
        stat = GenerationStats()
        outs = generate_responses(loaded.model, loaded.tokenizer, share.texts[share.span(b)], n=1,
                                  temperature=gen.temperature, top_p=gen.top_p, max_new_tokens=gen.max_new_tokens,
                                  batch_size=cfg.pool.generation_batch_size, seed=cfg.seed + b,
                                  backend=loaded.backend, stats=stat)
        record = {"statement_ids": share.ids[share.span(b)], "responses": [o[0] for o in outs],
                  "new_tokens": stat.new_tokens, "seconds": round(stat.seconds, 3)}
        _write_batch(share.directory / f"batch_{b:05d}.json", record)
        share.saved[b] = record
        drawn, spent = drawn + len(outs), spent + stat.seconds
        done = sum(len(r["statement_ids"]) for r in share.saved.values())
        write_progress(f"pool responses ({gen.name})", done, 0, len(share.ids), drawn / max(spent, 1e-9), 0.0)
        emit(PoolEvent("batch", (gen.name,), path, batch=b, prompts=len(outs)))


def _run_model(path: str, shares: list[_Share], cfg: ProfileConfig, emit, progress: bool) -> None:
    """Load one model, draw every missing batch of the generators it serves, and free it, even on an error."""
    from .models import load_generator

    if not any(share.missing for share in shares):
        return
    first = shares[0].gen
    check_generator_fits(first, _planned_backend(cfg))
    names = tuple(share.gen.name for share in shares)
    emit(PoolEvent("load", names, path))
    loaded = LoadedGenerator(*load_generator(path, cfg.models, first.tensor_parallel_size,
                                             first.gpu_memory_utilization))
    try:
        emit(PoolEvent("loaded", names, path, model=loaded.model))
        for share in shares:
            _draw_missing(share, loaded, path, cfg, emit, progress)
    finally:
        release_generator(loaded)
        emit(PoolEvent("freed", names, path))


def _share_stats(share: _Share) -> tuple[list, dict]:
    records = [share.saved[b] for b in share.batches]
    outs = [text for r in records for text in r["responses"]]
    seconds = sum(r["seconds"] for r in records)
    tokens = sum(r["new_tokens"] for r in records)
    return outs, {"seconds": round(seconds, 2), "new_tokens": tokens,
                  "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0, "from_checkpoint": share.reused}


# ------------------------------------------------------------------------------------------------------ the pool


def build_pool(statements: pd.DataFrame, cfg: ProfileConfig, run_root: Path, chat_client=None,
               progress: bool = True, on_event: Callable[[PoolEvent], None] | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate the pool: ``(pool, generator_stats)``.

    ``pool`` has one row per response: statement_id, response_id, generator, response, chars.  ``generator_stats``
    has, per generator, the responses asked for, produced, dropped as empty or failed, the seconds spent generating,
    new tokens, tokens per second, and how many responses came from a checkpoint of an earlier run (see the module).
    ``on_event`` is called with each :class:`PoolEvent` (tests measure memory and interrupt runs with it).
    """
    from .models import resolve_model_path
    from .reuse import model_digest

    emit = on_event or (lambda event: None)
    bundled = _bundled_responses()
    gens = {g.name: g for g in cfg.pool.generators}
    plan = assign_generators(statements, cfg.pool.generators, cfg.pool.responses_per_statement, cfg.seed, bundled)
    by_id = statements.set_index("statement_id")
    assigned = {name: list(group["statement_id"]) for name, group in plan.groupby("generator", sort=False)}
    outputs: dict[str, list] = {}
    extra: dict[str, dict] = {}
    by_model: dict[tuple, list[_Share]] = {}
    digests: dict[str, str] = {}
    for name, ids in assigned.items():
        gen = gens[name]
        if gen.kind == "bundled":
            outputs[name] = [bundled[(by_id.at[i, "source_id"], gen.model)] for i in ids]
            extra[name] = {"seconds": 0.0, "new_tokens": 0, "tokens_per_s": 0.0, "from_checkpoint": 0}
        elif gen.kind == "openai":
            outputs[name], extra[name] = _openai_responses(gen, [by_id.at[i, "text"] for i in ids], chat_client,
                                                            progress)
        else:
            path = resolve_model_path(gen.model, cfg, run_root)
            digests.setdefault(path, model_digest(path))
            share = _open_share(gen, ids, by_id, cfg, run_root, digests[path])
            by_model.setdefault((path, gen.tensor_parallel_size, gen.gpu_memory_utilization), []).append(share)
    for (path, _, _), shares in by_model.items():
        _run_model(path, shares, cfg, emit, progress)
        for share in shares:
            outputs[share.gen.name], extra[share.gen.name] = _share_stats(share)
    return _pool_table(plan, assigned, outputs), _stats_table(assigned, gens, outputs, extra)


def _openai_responses(gen: PoolGeneratorConfig, texts: list[str], chat_client, progress: bool = True
                      ) -> tuple[list, dict]:
    """One completion per statement through the cached chat client (its cache is the checkpoint)."""
    import time

    if chat_client is None:
        raise ValueError(f"pool generator {gen.name!r} is an OpenAI-compatible model but no chat client was given")
    hits_before = getattr(chat_client, "counts", {}).get("cache_hits", 0)
    start = time.perf_counter()
    messages = [[{"role": "user", "content": text}] for text in texts]
    outs = chat_client.complete_many(messages, model=gen.model, max_tokens=gen.max_new_tokens,
                                     temperature=gen.temperature, base_url=gen.base_url, progress=progress)
    hits = getattr(chat_client, "counts", {}).get("cache_hits", 0) - hits_before
    return outs, {"seconds": round(time.perf_counter() - start, 2), "new_tokens": 0, "tokens_per_s": 0.0,
                  "from_checkpoint": hits}


def _pool_table(plan: pd.DataFrame, assigned: dict, outputs: dict) -> pd.DataFrame:
    texts = {(sid, name): out for name, ids in assigned.items() for sid, out in zip(ids, outputs[name])}
    rows = []
    for sid, name in zip(plan["statement_id"], plan["generator"]):
        text = texts[(sid, name)]
        if text is None or not str(text).strip():
            continue
        clean, _ = scrub_personal_data(str(text).strip())
        rows.append({"statement_id": sid, "response_id": f"{sid}#{name}", "generator": name, "response": clean,
                     "chars": len(clean)})
    return pd.DataFrame(rows)


def _stats_table(assigned: dict, gens: dict, outputs: dict, extra: dict) -> pd.DataFrame:
    rows = []
    for name, ids in assigned.items():
        empty = sum(1 for text in outputs[name] if text is None or not str(text).strip())
        rows.append({"generator": name, "kind": gens[name].kind, "asked": len(ids), "produced": len(ids) - empty,
                     "dropped_empty_or_failed": empty, **extra[name]})
    return pd.DataFrame(rows)


__all__ = [
    "PARTIAL_FORMAT", "PoolEvent", "LoadedGenerator", "assign_generators", "release_generator",
    "shutdown_vllm", "check_generator_fits", "generation_fingerprint", "partial_dir", "build_pool",
]
