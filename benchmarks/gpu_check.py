"""The GPU check: what the CPU benchmarks cannot measure, to run on a CUDA machine whenever one is available.

    python benchmarks/gpu_check.py                   # every check in bf16; prints the "## GPU" section
    python benchmarks/gpu_check.py --write           # ... and puts it into benchmarks/RESULTS.md
    python benchmarks/gpu_check.py --precision fp16 --skip standin --model /models/Llama-3.2-3B-Instruct

Three checks, each one section of the report (``--skip`` leaves any out):

* ``standin``: the stand-in run of the colab and paper profiles (``python -m standin.run --precision bf16|fp16``):
  every chapter, end to end, with the stand-ins loaded and trained in half precision on the GPU instead of in
  float32 on a CPU.  Reports each profile's chapters, wall time and peak memory, and any problem the run found;
* ``generation``: the one generation interface (:func:`psyco_utils.models.generate_responses`) through HF
  ``generate`` and through vLLM (where vLLM is installed), on the same prompts: new tokens per second.  The model is
  the stand-in of Llama-3.2-3B-Instruct (its architecture and template, tiny and random: the gap between backends
  is what is measured) unless ``--model`` names a local copy of a real one;
* ``training``: reward-model and DPO training throughput (steps/s, pairs/s, one epoch) on the paper profile's
  stand-ins with the profile's own training settings at ``--precision``.

The machine (GPU, memory, torch, CUDA and vLLM versions) heads the section.  ``--write`` replaces the ``## GPU``
section of ``benchmarks/RESULTS.md`` (or appends one); ``--json`` keeps the raw numbers.  Without CUDA the script
refuses at once, with exit status 2, before it builds or loads anything.  Scratch files go to
``benchmarks/_work/gpu/`` (``--root``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DEFAULT_ROOT = ROOT / "benchmarks" / "_work" / "gpu"
sys.path.insert(0, str(ROOT))  # standin/

CHECKS = ("standin", "generation", "training")
PRECISIONS = {"bf16": "bfloat16", "fp16": "float16"}
GENERATION_MODEL = "meta-llama/Llama-3.2-3B-Instruct"  # its stand-in, unless --model
HEADING = "## GPU"


class NoCuda(RuntimeError):
    """The check needs a CUDA GPU and torch sees none."""


def require_cuda() -> None:
    """Refuse, naming what is missing, when torch sees no CUDA device."""
    import torch

    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU build of torch)"
        raise NoCuda(f"benchmarks/gpu_check.py needs a CUDA GPU and torch {torch.__version__} sees none (CUDA "
                     f"build: {build}). Run it on a GPU machine; the CPU figures come from benchmarks/run.py.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="bf16",
                        help="weights and mixed precision of every check (default bf16; fp16 for a T4)")
    parser.add_argument("--skip", nargs="+", choices=CHECKS, default=[], help="checks to leave out")
    parser.add_argument("--model", type=Path, help="a local model folder for the generation check (default: the "
                                                   f"stand-in of {GENERATION_MODEL})")
    parser.add_argument("--prompts", type=int, default=64, help="prompts in the generation check (default 64)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="new tokens per answer (default 128)")
    parser.add_argument("--pairs", type=int, default=256, help="training pairs per stage (default 256)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="scratch folder")
    parser.add_argument("--write", nargs="?", type=Path, const=RESULTS, default=None,
                        help="put the section into this Markdown file (default benchmarks/RESULTS.md)")
    parser.add_argument("--json", type=Path, help="also save the raw results here")
    args = parser.parse_args(argv)
    for name in ("prompts", "max_new_tokens", "pairs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if set(args.skip) == set(CHECKS):
        parser.error("--skip leaves no check to run")
    return args


# ---------------------------------------------------------------------------------------------------- measurements


def machine() -> dict:
    """The GPU(s), their memory, and the versions that decide the figures."""
    import torch

    from psyco_utils.manifest import package_versions

    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "gpus": torch.cuda.device_count(), "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda, "python": platform.python_version(),
            **package_versions(("torch", "transformers", "trl", "vllm"))}


def standin_paths(root: Path) -> dict[str, Path]:
    """The stand-ins of every hub model the colab and paper presets name, built once under ``root/models``."""
    import yaml

    from psyco_utils.config import PRESET_DIR
    from standin.models import build_standins
    from standin.run import hub_models

    ids = [h for p in ("colab", "paper") for h in hub_models(yaml.safe_load((PRESET_DIR / f"{p}.yaml").read_text()))]
    return build_standins(root / "models", hub_ids=list(dict.fromkeys(ids)))


def check_standin(root: Path, precision: str) -> dict:
    """The stand-in run of both profiles at ``precision``: status, wall time, and per profile its chapters' time
    and peak memory (from psyco-book's timings)."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "standin.run", "--profile", "colab", "paper", "--precision", precision,
               "--root", str(root / "standin")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    profiles = {}
    for profile in ("colab", "paper"):
        path = root / "standin" / "executed" / profile / f"timings_{profile}.json"
        timings = json.loads(path.read_text()) if path.exists() else {}
        profiles[profile] = {"chapters": len(timings), "seconds": sum(t["seconds"] for t in timings.values()),
                             "peak_memory_gib": max((t["peak_memory_gib"] for t in timings.values()), default=0.0)}
    problems = [line.split("PROBLEM ", 1)[1] for line in done.stdout.splitlines() if "PROBLEM " in line]
    return {"status": done.returncode, "seconds": time.perf_counter() - start, "profiles": profiles,
            "problems": problems}


def _vllm_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("vllm") is not None


def check_generation(model: Path, precision: str, prompts: int, max_new_tokens: int) -> list[dict]:
    """New tokens per second of HF generate and of vLLM (where installed) on the same prompts, one model at a time;
    a short warm-up call first, so that neither pays its start-up in the figure."""
    from psyco_utils.config import ModelsConfig
    from psyco_utils.models import GenerationStats, generate_responses, load_generator
    from psyco_utils.pool import LoadedGenerator, release_generator

    statements = [f"Since the move I have barely slept and I keep snapping at my partner, case {i}."
                  for i in range(prompts)]
    rows = []
    for backend in ("hf", "vllm"):
        if backend == "vllm" and not _vllm_installed():
            rows.append({"backend": backend, "status": "vLLM not installed"})
            continue
        models_cfg = ModelsConfig(policy=str(model), reward_backbone=str(model), dtype=PRECISIONS[precision],
                                  generation_backend=backend)
        loaded = LoadedGenerator(*load_generator(str(model), models_cfg))
        try:
            generate_responses(loaded.model, loaded.tokenizer, statements[:2], max_new_tokens=8, backend=backend)
            stats = GenerationStats()
            generate_responses(loaded.model, loaded.tokenizer, statements, temperature=1.0,
                               max_new_tokens=max_new_tokens, batch_size=prompts, seed=0, backend=backend,
                               stats=stats)
        finally:
            release_generator(loaded)
        rows.append({"backend": backend, "status": "ok", "prompts": prompts, "new_tokens": stats.new_tokens,
                     "seconds": stats.seconds, "tokens_per_s": stats.new_tokens / max(stats.seconds, 1e-9)})
    return rows


def _pairs(n: int):
    import datasets

    good = "It sounds like the move has worn you down. What has the last month been like at home?"
    bad = "Just go to bed earlier and stop arguing."
    return datasets.Dataset.from_dict({"ID": [str(i) for i in range(n)], "prefID": list(range(n)),
                                       "question": [f"I have not slept well since we moved, case {i}." for i in
                                                    range(n)], "chosen": [good] * n, "rejected": [bad] * n})


def check_training(root: Path, paths: dict[str, Path], precision: str, pairs: int) -> list[dict]:
    """Reward-model and DPO training throughput, one epoch on ``pairs`` pairs, with the paper profile's training
    settings on its stand-ins at ``precision`` (nothing reused: the training is what is timed)."""
    from psyco_utils import policy, reward
    from psyco_utils.config import ProfileConfig
    from standin.run import overlaid_profile

    raw, _ = overlaid_profile("paper", paths, precision)
    for key in ("policy", "reward_backbone"):  # the stand-ins by absolute path, wherever this runs from
        raw["models"][key] = str((ROOT / raw["models"][key]).resolve())
    cfg = ProfileConfig.model_validate({**raw, "reuse_trained_models": False})
    data, rows = _pairs(pairs), []
    training = {**cfg.dpo.training, "num_train_epochs": 1}
    out = policy.train_dpo(training, cfg.models.policy, data, root / "dpo", seed=0, lora=cfg.models.lora, reuse=False)
    rows.append({"stage": "DPO", "pairs": pairs, "steps": out.steps, "seconds": out.seconds})
    args = reward.reward_config(cfg, root / "reward_model", has_dev=False)
    args.num_train_epochs = 1
    start = time.perf_counter()
    reward.train_reward_model(cfg, data, None, root / "reward_model", root, args=args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps = -(-pairs // (args.per_device_train_batch_size * args.gradient_accumulation_steps * world))
    rows.append({"stage": "reward model", "pairs": pairs, "steps": steps, "seconds": time.perf_counter() - start})
    for row in rows:
        row.update({"steps_per_s": row["steps"] / row["seconds"], "pairs_per_s": row["pairs"] / row["seconds"]})
    return rows


# ---------------------------------------------------------------------------------------------------- the report


def _table(rows: list[dict], columns: dict[str, str]) -> str:
    """A Markdown table of ``rows`` with ``columns`` (key -> header); floats with two decimals, thousands marked."""
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.2f}"
        return f"{value:,}" if isinstance(value, int) else ("" if value is None else str(value))

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(key)) for key in columns) + " |" for row in rows]
    return "\n".join(lines)


def _standin_part(run: dict, precision: str) -> str:
    rows = [{"profile": p, **v} for p, v in run["profiles"].items()]
    state = "complete" if run["status"] == 0 else f"INCOMPLETE (exit status {run['status']})"
    return (f"`python -m standin.run --profile colab paper --precision {precision}`: {state} in "
            f"{run['seconds']:,.1f} s.\n\n"
            + _table(rows, {"profile": "profile", "chapters": "chapters", "seconds": "chapters s",
                            "peak_memory_gib": "peak memory GiB"})
            + "".join(f"\n- problem: {p}" for p in run["problems"]))


def _generation_part(gen: dict, precision: str) -> str:
    return (f"{gen['model']}, {precision}, temperature 1.0, one sample per prompt, all prompts in one call after a "
            "warm-up call.\n\n"
            + _table(gen["rows"], {"backend": "backend", "status": "status", "prompts": "prompts",
                                   "new_tokens": "new tokens", "seconds": "seconds", "tokens_per_s": "tokens/s"}))


def _training_part(rows: list[dict], precision: str) -> str:
    return (f"The paper profile's training settings on its stand-ins, one epoch, {precision}.\n\n"
            + _table(rows, {"stage": "stage", "pairs": "pairs", "steps": "steps", "seconds": "seconds",
                            "steps_per_s": "steps/s", "pairs_per_s": "pairs/s"}))


#: Each check's heading and the writer of its part of the section.
PARTS = {"standin": ("The stand-in run", _standin_part), "generation": ("HF generate against vLLM", _generation_part),
         "training": ("Training throughput", _training_part)}


def gpu_section(results: dict) -> str:
    """The ``## GPU`` section of benchmarks/RESULTS.md from one run's results (a check that failed shows its error)."""
    m, precision = results["machine"], results["precision"]
    parts = [f"{HEADING}\n\nWritten by `benchmarks/gpu_check.py` on {results['when']} at {precision}.\n\n"
             f"- machine: {m['gpus']} x {m['gpu']} ({m['gpu_memory_gib']} GiB), CUDA {m['cuda']}, Python {m['python']}\n"
             f"- versions: torch {m['torch']}, transformers {m['transformers']}, trl {m['trl']}, vllm {m['vllm']}"]
    for check, (heading, write) in PARTS.items():
        if check in results:
            found = results[check]
            body = (f"FAILED: {found['error']}" if isinstance(found, dict) and "error" in found
                    else write(found, precision))
            parts.append(f"### {heading} ({precision})\n\n{body}")
    return "\n\n".join(parts) + "\n"


def put_section(document: str, section: str, heading: str = HEADING) -> str:
    """``document`` with its ``heading`` section (up to the next ``## `` heading) replaced by ``section``, or with
    ``section`` appended when it has none (benchmarks/pool_memory.py writes its own section with it)."""
    lines = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        return document.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    rest = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + rest if rest else "")


def measure(args: argparse.Namespace) -> dict:
    """Every check ``args`` asks for, in turn."""
    results = {"precision": args.precision, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": machine()}
    root = args.root.resolve()
    paths = standin_paths(root) if {"generation", "training"} - set(args.skip) else {}
    if "standin" not in args.skip:
        results["standin"] = _attempt(check_standin, root, args.precision)
    if "generation" not in args.skip:
        model = args.model or paths[GENERATION_MODEL]
        shown = args.model.name if args.model else f"the stand-in of {GENERATION_MODEL}"
        rows = _attempt(check_generation, model, args.precision, args.prompts, args.max_new_tokens)
        results["generation"] = rows if "error" in rows else {"model": shown, "rows": rows}
    if "training" not in args.skip:
        results["training"] = _attempt(check_training, root / "training", paths, args.precision, args.pairs)
    return results


def _attempt(check, *args):
    """A check's result, or ``{"error": ...}`` when it raised: one failed check does not lose the others."""
    try:
        return check(*args)
    except Exception as exc:  # reported in the section, and the exit status says a check failed
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require_cuda()
    except NoCuda as refused:
        print(f"gpu_check: {refused}", file=sys.stderr)
        return 2
    results = measure(args)
    section = gpu_section(results)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.write:
        existing = args.write.read_text(encoding="utf-8") if args.write.exists() else "# Benchmarks\n"
        args.write.write_text(put_section(existing, section), encoding="utf-8")
        print(f"gpu_check: section {HEADING!r} written to {args.write}")
    failed = [c for c in CHECKS if isinstance(results.get(c), dict) and ("error" in results[c]
                                                                        or results[c].get("status", 0) != 0)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
