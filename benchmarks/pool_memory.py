"""Peak memory of the response pool: three generators loaded one at a time (``psyco_utils.pool`` as it is) against
all three loaded at once (the pool before it freed its generators).

    python benchmarks/pool_memory.py            # a few minutes on a busy CPU; prints a Markdown section
    python benchmarks/pool_memory.py --write    # ... and puts it into benchmarks/RESULTS.md

The three generators are stand-ins saved locally: randomly initialised Llamas of about 120 MB each in float32, with
a tokenizer trained here on the bundled statements; each answers the same eight statements (three responses per
statement, 16 new tokens).  Each way of running is measured in a process of its own, so that neither inherits the
other's freed-but-kept memory: the peak resident memory of the process (``ru_maxrss``) above its resident memory
once everything is imported, and, for the pool, the resident memory at each of its events (a model about to load,
loaded, a batch drawn, a model freed), so the rise and fall per generator can be seen.  On a GPU the same
one-at-a-time rule holds for GPU memory (``torch.cuda.empty_cache()`` and vLLM's shutdown, see ``psyco_utils.pool``);
this script measures the CPU process, which is what a machine without a GPU can show.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work" / "pool_memory"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## Pool memory"
GENERATORS = 3
STATEMENTS = [
    "I have been so tired lately that getting out of bed feels like a mountain I cannot climb.",
    "My sister and I stopped talking after our father's funeral and I do not know how to start again.",
    "Every time my manager calls me into a meeting my heart races and I am sure I am about to be let go.",
    "I moved to a new city for university and I have not made a single friend here in four months.",
    "My partner says I check my phone too much when we are together and I think they might be right.",
    "I keep replaying a mistake I made at work last year even though everyone else seems to have forgotten it.",
    "Since the baby was born I feel like a stranger in my own house and I miss sleep more than I can say.",
    "My best friend is moving abroad next month and I am already grieving the friendship.",
]
MIB = 2**20


def build_generators(folder: Path, count: int = GENERATORS) -> list[str]:
    """``count`` random Llamas (hidden size 768, 4 layers: about 120 MB each in float32) sharing a tokenizer trained
    on the bundled statements; built once and kept in ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from psyco_utils.data import load_bundled_corpus
    from psyco_utils.tiny import train_tokenizer

    paths = [folder / f"generator-{i}" for i in range(count)]
    if all((p / "config.json").exists() for p in paths):
        return [str(p) for p in paths]
    corpus, responses = load_bundled_corpus()
    tokenizer = train_tokenizer([*corpus["text"], *responses["text"]], 1000, folder / "tokenizer")
    for i, path in enumerate(paths):
        torch.manual_seed(i)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=2048, num_hidden_layers=4,
                             num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=512,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        LlamaForCausalLM(config).save_pretrained(path)
        tokenizer.save_pretrained(path)
    return [str(p) for p in paths]


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def _profile(paths: list[str]):
    from psyco_utils.config import load_profile

    generators = [{"name": f"generator-{i}", "kind": "hf", "model": path, "temperature": 1.0, "max_new_tokens": 16}
                  for i, path in enumerate(paths)]
    return load_profile("tiny", {"pool.generators": generators, "pool.responses_per_statement": len(paths),
                                 "pool.generation_batch_size": 4, "reuse_trained_models": False})


def one_at_a_time(paths: list[str]) -> dict:
    """The pool as it is: resident memory at each of its events, and the process's peak."""
    import pandas as pd

    from psyco_utils import pool

    cfg = _profile(paths)
    statements = pd.DataFrame({"statement_id": [f"s{i}" for i in range(len(STATEMENTS))], "text": STATEMENTS,
                               "source": "csv", "source_id": [str(i) for i in range(len(STATEMENTS))]})
    base, trace = _rss(), []

    def record(event):
        trace.append({"event": event.kind, "generator": ",".join(event.generators), "batch": event.batch,
                      "rss_above_start_mib": (_rss() - base) / MIB})

    with tempfile.TemporaryDirectory() as run_root:
        responses, _ = pool.build_pool(statements, cfg, Path(run_root), progress=False, on_event=record)
    return {"peak_above_start_mib": (_peak_rss() - base) / MIB, "responses": len(responses), "trace": trace}


def all_at_once(paths: list[str]) -> dict:
    """Every generator loaded and kept while the next one loads and generates (the pool before it freed them)."""
    from psyco_utils import models

    cfg = _profile(paths)
    base, held, responses = _rss(), [], 0
    for path in paths:
        model, tokenizer, backend = models.load_generator(path, cfg.models)
        out = models.generate_responses(model, tokenizer, STATEMENTS, max_new_tokens=16, batch_size=4,
                                        backend=backend)
        responses += len(out)
        held.append(model)
    return {"peak_above_start_mib": (_peak_rss() - base) / MIB, "responses": responses, "trace": []}


def measure_in_own_process(mode: str, paths: list[str]) -> dict:
    """Run one mode in a fresh Python process and read its JSON result."""
    done = subprocess.run([sys.executable, __file__, "--mode", mode, "--paths", *paths], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"pool_memory --mode {mode} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def section(one: dict, every: dict, model_mib: float) -> str:
    """The Markdown section for benchmarks/RESULTS.md."""
    freed = [row for row in one["trace"] if row["event"] in ("loaded", "freed")]
    steps = "\n".join(f"| {row['generator']} | {row['event']} | {row['rss_above_start_mib']:,.1f} |" for row in freed)
    ratio = one["peak_above_start_mib"] / every["peak_above_start_mib"] if every["peak_above_start_mib"] else 0.0
    return (f"{HEADING}\n\nWritten by `benchmarks/pool_memory.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            f". {GENERATORS} stand-in generators (random Llamas of {model_mib:,.0f} MiB of weights each, float32, CPU),"
            f" {len(STATEMENTS)} statements, {GENERATORS} responses per statement; each way in a process of its own; "
            "peak resident memory above the process's memory once imports are done.\n\n"
            "| pool | responses | peak memory above start MiB |\n|---|---|---|\n"
            f"| one generator at a time (psyco_utils.pool) | {one['responses']} | {one['peak_above_start_mib']:,.1f} |\n"
            f"| all {GENERATORS} loaded at once | {every['responses']} | {every['peak_above_start_mib']:,.1f} |\n\n"
            f"One at a time peaks at {ratio:.2f} of all at once; both peaks include the transient of loading a model "
            "(its file mapped while its weights are copied).  Resident memory at the pool's events (the process keeps "
            "a freed model's memory for the next one, so it stays at one model's level instead of falling, and does "
            "not grow from generator to generator):\n\n"
            "| generator | event | memory above start MiB |\n|---|---|---|\n" + steps + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/pool_memory.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", nargs="?", type=Path, const=RESULTS, default=None,
                        help="put the section into this Markdown file (default benchmarks/RESULTS.md)")
    parser.add_argument("--mode", choices=("one", "all"), help=argparse.SUPPRESS)  # one measurement, in this process
    parser.add_argument("--paths", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:
        import psyco_utils.models  # noqa: F401  (imports done before the start is measured)
        import psyco_utils.pool  # noqa: F401

        print(json.dumps((one_at_a_time if args.mode == "one" else all_at_once)(args.paths)))
        return 0
    paths = build_generators(WORK)
    model_mib = sum(f.stat().st_size for f in Path(paths[0]).glob("*.safetensors")) / MIB
    text = section(measure_in_own_process("one", paths), measure_in_own_process("all", paths), model_mib)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from gpu_check import put_section

        existing = args.write.read_text(encoding="utf-8") if args.write.exists() else "# Benchmarks\n"
        args.write.write_text(put_section(existing, text, HEADING), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
