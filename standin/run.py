"""The stand-in run: the colab and paper profiles end to end, on a CPU, with nothing from the hub or a paid API.

``python -m standin.run --profile colab paper`` (``make standin``):

1. builds the stand-in of every hub model the profile names (:mod:`standin.models`; reused once built);
2. writes the overlaid profile: the preset, its hub models replaced by their stand-ins, its hub sources by their
   fixtures (only ``kind`` and ``path`` change), and the sizes of ``standin/overlay.yaml``;
3. starts the loopback OpenAI-compatible server (:mod:`standin.replies`) in a process of its own;
4. runs every chapter with ``psyco-book run`` into the stand-in's own executed folder and runs folder (the two
   profiles side by side, each with its own server, their output in ``logs/<profile>.log``; ``--jobs 1`` in turn);
5. asserts that every chapter executed and that every artifact of the contract (design.md) exists and loads.

Everything lives under ``runs/standin/`` (``--root``): ``models/``, ``profiles/``, ``executed/<profile>/``,
``logs/`` and the runs themselves in ``runs/<profile>/<model tag>/`` (the run folder of
:func:`psyco_utils.config.run_dir`).  Each run starts from an empty runs folder unless ``--keep``.

``--precision`` chooses how the stand-ins load and train.  ``float32`` (the default) is what a CPU can run: the
overlay's precision keys set float32 weights and no mixed precision.  ``bf16-cpu`` runs the paper's precision on a
CPU: bfloat16 weights, and every stage trained under bf16 autocast with ``use_cpu`` (CI runs the paper profile so,
to exercise the half-precision code paths without a GPU).  On a CUDA machine (``benchmarks/gpu_check.py``)
``preset`` keeps each preset's own settings (fp16 for colab, bf16 for paper), and ``bf16`` or ``fp16`` sets
``models.dtype`` and every stage's mixed-precision flag to that one; these three refuse to start without CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from psyco_utils.config import ProfileConfig
from psyco_utils.layout import run_folder
from standin.openai_server import server_in_own_process

REPO_ROOT = Path(__file__).resolve().parent.parent
OVERLAY = Path(__file__).with_name("overlay.yaml")
FIXTURES = Path(__file__).with_name("fixtures")
FIXTURE_KINDS = {".csv": "csv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
DEFAULT_ROOT = REPO_ROOT / "runs" / "standin"
PROFILES = ("colab", "paper")
PRECISIONS = ("float32", "bf16-cpu", "preset", "bf16", "fp16")
#: The precisions a machine without CUDA can run.
CPU_PRECISIONS = ("float32", "bf16-cpu")
#: The profile sections whose training settings hold the precision.
TRAINED_STAGES = ("reward", "dpo", "dpo_iter")
#: The overlay's keys that decide precision (see standin/overlay.yaml); --precision replaces them.
PRECISION_KEYS = ("models.dtype",
                  *(f"{stage}.training.{flag}" for stage in TRAINED_STAGES for flag in ("fp16", "bf16")))


def say(message: str) -> None:
    print(f"standin: {message}", flush=True)


# ------------------------------------------------------------------------------------------------ the overlaid profile


def hub_models(raw: dict) -> list[str]:
    """Every hub model id a preset names: policy, reward backbone, hf pool generators, off-the-shelf reward models."""
    ids = [raw["models"]["policy"], raw["models"]["reward_backbone"]]
    ids += [g["model"] for g in raw["pool"]["generators"] if g["kind"] == "hf"]
    ids += list(raw.get("reward", {}).get("off_the_shelf", []))
    return list(dict.fromkeys(ids))


def fixture_for(source: dict) -> Path | None:
    """The fixture of a hub source in ``standin/fixtures/``: named after the source or its hub id's last part."""
    names = {source.get("name"), (source.get("hub_id") or "").split("/")[-1]} - {None, ""}
    for path in sorted(FIXTURES.glob("*")) if FIXTURES.is_dir() else []:
        if path.suffix in FIXTURE_KINDS and path.stem in names:
            return path
    return None


def replace_sources(sources: list[dict]) -> tuple[list[dict], list[str]]:
    """Each hub source with only ``kind`` and ``path`` swapped for its fixture; those without one are left out."""
    kept, left_out = [], []
    for source in sources:
        if source["kind"] != "hub":
            kept.append(dict(source))
            continue
        fixture = fixture_for(source)
        if fixture is None:
            left_out.append(source.get("name") or source["hub_id"])
            continue
        kept.append({**source, "kind": FIXTURE_KINDS[fixture.suffix], "path": _shown_path(fixture)})
    if not kept:  # a preset of hub sources only, none with a fixture yet
        kept.append({"kind": "bundled", "name": "bundled"})
    return kept, left_out


def _shown_path(path: Path) -> str:
    """A path relative to the repository when inside it (the chapters run there): no machine paths on the pages."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def apply_overlay(raw: dict, overlay: dict) -> dict:
    """The overlay's dotted keys applied to the preset; ``every_pool_generator.KEY`` sets KEY on each generator."""
    from psyco_utils.config import apply_overrides

    per_generator = {k.split(".", 1)[1]: v for k, v in overlay.items() if k.startswith("every_pool_generator.")}
    plain = {k: v for k, v in overlay.items() if not k.startswith("every_pool_generator.")}
    out = apply_overrides(raw, plain, str(OVERLAY))
    out["pool"]["generators"] = [{**g, **per_generator} for g in out["pool"]["generators"]]
    return out


def precision_overlay(overlay: dict, precision: str) -> dict:
    """The overlay with its precision keys as ``--precision`` says: kept (``float32``), dropped so the preset's own
    apply (``preset``), or set to bf16 or fp16 weights and mixed precision for every stage (``bf16``, ``fp16``; and
    ``bf16-cpu``, bf16 with ``use_cpu`` for every stage)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "float32":
        return dict(overlay)
    kept = {k: v for k, v in overlay.items() if k not in PRECISION_KEYS}
    if precision == "preset":
        return kept
    half_precision = "bf16" if precision == "bf16-cpu" else precision
    half = {f"{stage}.training.{flag}": flag == half_precision for stage in TRAINED_STAGES for flag in ("fp16", "bf16")}
    on_cpu = {f"{stage}.training.use_cpu": True for stage in TRAINED_STAGES} if precision == "bf16-cpu" else {}
    return {**kept, "models.dtype": {"bf16": "bfloat16", "fp16": "float16"}[half_precision], **half, **on_cpu}


def overlaid_profile(profile: str, model_paths: dict[str, Path], precision: str = "float32"
                     ) -> tuple[dict, list[str]]:
    """The preset with its hub models and sources replaced and the overlay applied (its precision keys as
    ``precision`` says: :func:`precision_overlay`); and the sources left out."""
    from psyco_utils.config import PRESET_DIR

    raw = yaml.safe_load((PRESET_DIR / f"{profile}.yaml").read_text(encoding="utf-8"))
    shown = {hub_id: _shown_path(path) for hub_id, path in model_paths.items()}
    models = raw["models"]
    models["policy"], models["reward_backbone"] = shown[models["policy"]], shown[models["reward_backbone"]]
    for gen in raw["pool"]["generators"]:
        if gen["kind"] == "hf":
            gen["model"] = shown[gen["model"]]
    reward = raw.setdefault("reward", {})
    reward["off_the_shelf"] = [shown[name] for name in reward.get("off_the_shelf", [])]
    raw["data"]["sources"], left_out = replace_sources(raw["data"]["sources"])
    raw = apply_overlay(raw, precision_overlay(yaml.safe_load(OVERLAY.read_text(encoding="utf-8")), precision))
    raw["description"] = f"stand-in run of the {profile} profile: " + raw["description"]
    return raw, left_out


# ------------------------------------------------------------------------------------------------- the contract


def _load_parquet(path: Path, columns: tuple[str, ...] = ()):
    import pandas as pd

    frame = pd.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AssertionError(f"{path} lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise AssertionError(f"{path} is empty")
    return frame


def _load_json(path: Path) -> dict:
    data = json.loads(path.read_text())
    if not data:
        raise AssertionError(f"{path} is empty")
    return data


def _load_model(path: Path, kind: str):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    cls = AutoModelForSequenceClassification if kind == "reward" else AutoModelForCausalLM
    AutoTokenizer.from_pretrained(path)
    return cls.from_pretrained(path)


def _load_judgments(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count = db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    if not count:
        raise AssertionError(f"{path} holds no judgment")
    return count


def _load_dataset(path: Path):
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(str(path))
    if not isinstance(data, DatasetDict) or not {"train", "test"} <= set(data):
        raise AssertionError(f"{path} is not a DatasetDict with train and test splits")
    return data


def contract_checks(run: Path, rounds: int) -> list[tuple[str, object]]:
    """``(artifact, loader)`` for every artifact of design.md's contract, in chapter order.  The paths are spelled
    out here on purpose, from the contract, rather than taken from :mod:`psyco_utils.layout`: this is the check that
    the layout still writes what the contract promises."""
    # A run keyed by model (runs/<profile>/<model tag>/) finds the dataset stages in the profile's folder, which its
    # model runs share; such a folder says so in shared_dataset.json.
    data = run.parent if (run.parent / "shared_dataset.json").is_file() else run
    checks = [
        ("statements/statements.parquet", lambda: _load_parquet(data / "statements/statements.parquet", ("text",))),
        ("pool/pool.parquet", lambda: _load_parquet(data / "pool/pool.parquet", ("statement_id", "response"))),
        ("judgments.sqlite", lambda: _load_judgments(data / "judgments.sqlite")),
        ("psycopref/ (DatasetDict)", lambda: _load_dataset(data / "psycopref")),
        ("reward_model/model", lambda: _load_model(run / "reward_model/model", "reward")),
        ("reward_model/metrics.json", lambda: _load_json(run / "reward_model/metrics.json")),
        ("reward_model/test_predictions.parquet", lambda: _load_parquet(
            run / "reward_model/test_predictions.parquet", ("ID", "prefID", "reward_chosen", "reward_rejected"))),
        ("dpo/model", lambda: _load_model(run / "dpo/model", "policy")),
        ("dpo/metrics.json", lambda: _load_json(run / "dpo/metrics.json")),
    ]
    for k in range(1, rounds + 1):
        round_dir = run / "dpo_iter" / f"round_{k}"
        checks += [(f"dpo_iter/round_{k}/model", lambda d=round_dir: _load_model(d / "model", "policy")),
                   (f"dpo_iter/round_{k}/pairs.parquet", lambda d=round_dir: _load_parquet(d / "pairs.parquet")),
                   (f"dpo_iter/round_{k}/metrics.json", lambda d=round_dir: _load_json(d / "metrics.json"))]
    checks += [
        ("eval/win_rates.json", lambda: _load_json(run / "eval/win_rates.json")),
        ("eval/verdicts.parquet", lambda: _load_parquet(run / "eval/verdicts.parquet")),
        ("eval/answers.parquet", lambda: _load_parquet(run / "eval/answers.parquet", ("setting", "responder", "response"))),
        ("manifest.json", lambda: _load_json(run / "manifest.json")),
    ]
    return checks


def verify(run: Path, rounds: int, chapters: list[str]) -> tuple[list[str], list[dict]]:
    """Problems found (empty when the run is complete) and the quality checks the chapters recorded.  A failed check
    is a problem unless it is marked ``model_quality`` (:mod:`psyco_utils.checks`)."""
    problems = []
    for name, load in contract_checks(run, rounds):
        try:
            load()
        except Exception as exc:  # any failure to load is a broken contract; name the artifact and the reason
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    manifest_path = run / "manifest.json"
    stages = json.loads(manifest_path.read_text()).get("stages", {}) if manifest_path.exists() else {}
    checks = []
    for chapter in chapters:
        entry = stages.get(chapter)
        if not entry or not entry.get("finished"):
            problems.append(f"manifest.json: chapter {chapter} is not recorded as finished")
        elif entry.get("status", "ok") not in ("ok", "checks failed"):
            problems.append(f"manifest.json: chapter {chapter} has status {entry['status']!r}")
        checks += [{"chapter": chapter, **c} for c in (entry or {}).get("checks", [])]
    for check in checks:
        if not check["passed"] and not check.get("model_quality"):
            problems.append(f"chapter {check['chapter']}: check {check['name']!r} failed: {check['message']} (only "
                            "checks of what training achieved may fail on random-weight stand-ins)")
    return problems, checks


def unserved_paths(cfg, served: dict[str, int]) -> list[str]:
    """Every paid path the profile takes must have reached the loopback server: the judge's scores and verdicts,
    the LLM theme labeller, the openai pool generators and reference model (plain chats), the Batch API."""
    expected = {"principle_scores": "the judge's scores", "principle_verdicts": "the judge's comparisons"}
    if cfg.data.theme_labeller == "llm":
        expected["label"] = "the LLM theme labeller"
    if any(g.kind == "openai" for g in cfg.pool.generators) or cfg.eval.reference == "openai":
        expected["chat"] = "the openai pool generators and reference model"
    if cfg.judge.use_batch_api:
        expected["batches"] = "the Batch API"
    return [f"the loopback server answered nothing for {what} ({kind})" for kind, what in expected.items()
            if not served.get(kind)]


# ----------------------------------------------------------------------------------------------------- the run


def prepare_profile(profile: str, root: Path, keep: bool, precision: str = "float32") -> dict:
    """Build the profile's stand-in models, write its overlaid profile, and clear its earlier run unless ``keep``."""
    from psyco_utils.config import PRESET_DIR

    from .models import build_standins

    start = time.perf_counter()
    preset = yaml.safe_load((PRESET_DIR / f"{profile}.yaml").read_text(encoding="utf-8"))
    model_paths = build_standins(root / "models", seed=preset.get("seed", 1234), hub_ids=hub_models(preset))
    build_seconds = time.perf_counter() - start
    raw, left_out = overlaid_profile(profile, model_paths, precision)
    profile_path = root / "profiles" / f"{profile}.yaml"
    profile_path.parent.mkdir(parents=True, exist_ok=True)
    profile_path.write_text(f"# written by standin/run.py from psyco_utils/presets/{profile}.yaml and "
                            f"standin/overlay.yaml (precision: {precision})\n" + yaml.safe_dump(raw, sort_keys=False),
                            encoding="utf-8")
    for name in left_out:
        say(f"{profile}: source {name!r} has no fixture in standin/fixtures/ and is left out")
    if not keep:
        shutil.rmtree(root / "runs" / profile, ignore_errors=True)
        shutil.rmtree(root / "executed" / profile, ignore_errors=True)
    return {"profile": profile, "raw": raw, "profile_path": profile_path, "build_seconds": round(build_seconds, 1)}


def execute_profile(prepared: dict, root: Path, log: Path | None) -> dict:
    """Run every chapter of a prepared profile against its own loopback server, then check the contract.

    With ``log``, psyco-book's output goes to that file (profiles running side by side); otherwise to the console.
    """
    from psyco_book.book import chapter_sources

    profile, raw = prepared["profile"], prepared["raw"]
    start = time.perf_counter()
    runs_root, executed = root / "runs", root / "executed" / profile
    chapters = [p.stem for p in chapter_sources()]
    served: dict[str, int] = {}
    with server_in_own_process("standin.replies:StandInServer", served, max_lifetime_s=3600) as base_url:
        env = {**os.environ, "PSYCO_RUNS_DIR": str(runs_root), "OPENAI_BASE_URL": base_url,
               "OPENAI_API_KEY": "standin-not-a-secret"}
        say(f"{profile}: running {len(chapters)} chapters with {_shown_path(prepared['profile_path'])}"
            + (f" (output in {_shown_path(log)})" if log else ""))
        command = [sys.executable, "-m", "psyco_book", "run", "--profile", _shown_path(prepared["profile_path"]),
                   "--executed-dir", str(executed)]
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as out:
                rc = subprocess.call(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        else:
            rc = subprocess.call(command, cwd=REPO_ROOT, env=env)
    timings_path = executed / f"timings_{profile}.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    problems, checks = verify(run_folder(raw["name"], raw["models"]["policy"], runs_root),
                              int(raw["dpo_iter"]["rounds"]), chapters)
    problems += unserved_paths(ProfileConfig.model_validate(raw), served)
    if rc != 0:  # psyco-book named the chapter and the cell; list only what never got written
        failed = [line for line in log.read_text().splitlines() if "FAILED" in line] if log else []
        problems = [f"psyco-book run exited with status {rc}", *failed] + [
            p for p in problems if "FileNotFound" in p or "not recorded" in p]
    return {"profile": profile, "problems": problems, "checks": checks, "timings": timings, "served": served,
            "build_seconds": prepared["build_seconds"], "seconds": round(time.perf_counter() - start, 1)}


def report(result: dict) -> None:
    profile = result["profile"]
    for chapter, timing in result["timings"].items():
        say(f"{profile}: {chapter}: {timing['seconds']:.1f} s, peak {timing['peak_memory_gib']:.2f} GiB")
    say(f"{profile}: the loopback server answered " + ", ".join(f"{n} {k}" for k, n in result["served"].items()))
    failed = [c for c in result["checks"] if not c["passed"]]
    of_training = [c for c in failed if c.get("model_quality")]
    say(f"{profile}: {len(result['checks'])} quality checks recorded, {len(failed)} failed, {len(of_training)} of "
        "them checks of what training achieved (checks: report; random-weight models are not expected to pass those)")
    for problem in result["problems"]:
        say(f"{profile}: PROBLEM {problem}")
    say(f"{profile}: {'complete' if not result['problems'] else 'INCOMPLETE'} in {result['seconds']:.1f} s "
        f"(stand-in models {result['build_seconds']:.1f} s)")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standin.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", nargs="+", choices=PROFILES, default=list(PROFILES))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="where models, profiles and runs go")
    parser.add_argument("--keep", action="store_true", help="keep earlier runs (reuse their caches and models)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="profiles run side by side (default 2: each chapter's imports and kernel start-up are "
                             "single-threaded, so two profiles share two cores better than one)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="float32 (default, runs anywhere); bf16-cpu (bf16 weights and autocast on the CPU); on a "
                             "CUDA GPU: preset (each preset's own), bf16, fp16")
    args = parser.parse_args(argv)
    if args.precision not in CPU_PRECISIONS and not _cuda_available():
        parser.error(f"--precision {args.precision} needs a CUDA GPU and none is visible; on a CPU use the default "
                     "--precision float32, or bf16-cpu for bf16 weights and autocast on the CPU")
    root = args.root.resolve()
    prepared = [prepare_profile(profile, root, args.keep, args.precision) for profile in args.profile]
    start = time.perf_counter()
    if args.jobs > 1 and len(prepared) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(lambda p: execute_profile(p, root, root / "logs" / f"{p['profile']}.log"),
                                    prepared))
    else:
        results = [execute_profile(p, root, None) for p in prepared]
    for result in results:
        report(result)
    say(f"{len(results)} profile(s) in {time.perf_counter() - start:.1f} s (stand-in models built beforehand)")
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
