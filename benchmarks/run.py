"""Benchmarks of the tiny book: where the time goes, how it scales, how close each stage is to its limit.

    .venv/bin/python benchmarks/run.py            # everything, writes benchmarks/RESULTS.md (about 15 minutes)
    .venv/bin/python benchmarks/run.py --no-book  # skip the two whole-book runs (about 3 minutes)

Figures go to benchmarks/RESULTS.md, never into timed tests.  The book runs use a scratch runs folder
(benchmarks/_work/), so they do not touch runs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"
sys.path.insert(0, str(ROOT))  # standin/ (the loopback OpenAI-compatible server)
from standin.openai_server import server_in_own_process  # noqa: E402


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def book_runs() -> tuple[str, dict]:
    """The whole tiny book cold (empty runs folder) and warm (tiny world and judge cache reused)."""
    runs = WORK / "runs"
    executed = WORK / "executed"
    shutil.rmtree(WORK, ignore_errors=True)
    env = {**os.environ, "PSYCO_RUNS_DIR": str(runs)}
    results = {}
    for label in ("cold", "warm"):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "psyco_book", "run", "--profile", "tiny", "--executed-dir",
                        str(executed)], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results[label] = {"total": time.perf_counter() - start,
                          "chapters": json.loads((executed / "timings_tiny.json").read_text())}
        (executed / "timings_tiny.json").unlink()
    rows = []
    for chapter in results["cold"]["chapters"]:
        cold, warm = results["cold"]["chapters"][chapter], results["warm"]["chapters"][chapter]
        rows.append({"chapter": chapter, "cold s": cold["seconds"], "warm s": warm["seconds"],
                     "peak memory GiB": max(cold["peak_memory_gib"], warm["peak_memory_gib"])})
    peak = max(r["peak memory GiB"] for r in rows)
    rows.append({"chapter": "whole book (wall, with kernel starts)", "cold s": results["cold"]["total"],
                 "warm s": results["warm"]["total"], "peak memory GiB": peak})
    slowest = max(results["warm"]["chapters"], key=lambda c: results["warm"]["chapters"][c]["seconds"])
    cold, warm = results["cold"]["total"], results["warm"]["total"]
    verdicts = [
        f"- whole book cold: {cold:.0f} s against the 300 s target: {'met' if cold < 300 else 'not met'}",
        f"- warm re-run: {warm:.0f} s against the 90 s target: {'met' if warm < 90 else 'not met'}"
        + ("" if warm < 90 else f"; the slowest warm chapter is {slowest} "
           f"({results['warm']['chapters'][slowest]['seconds']:.0f} s)"),
        f"- peak memory: {peak:.2f} GiB against the 3 GiB target: {'met' if peak < 3 else 'not met'}",
    ]
    text = ("## The tiny book\n\nCold: an empty runs folder (the tiny world is built, every model trained). Warm: the "
            "same folder again: the tiny world, the judge cache and the trained models are reused (a training stage "
            "whose inputs are unchanged loads its saved model, and held-out samples are read back, `psyco_utils.reuse`); "
            "pool generation, DPO-Iter's sampling, reward scoring, judging from the cache and evaluation run again.\n\n"
            + table(rows, ["chapter", "cold s", "warm s", "peak memory GiB"]) + "\n\n" + "\n".join(verdicts))
    return text, results


def judge_throughput() -> str:
    from psyco_utils.judge import JudgeConfig, ScoreItem, make_judge

    os.environ.setdefault("OPENAI_API_KEY", "benchmark-key")
    statement = "I have felt anxious every morning before work for months and I cannot sleep properly anymore."
    rows = []
    latency = 0.1
    # the CPU ceiling: the same client and loopback server with no latency at all (two processes on this machine's cores)
    with server_in_own_process(latency=0.0, max_lifetime_s=1800) as base_url:
        cfg = JudgeConfig(backend="openai", model="gpt-4o-mini", base_url=base_url, concurrency=32,
                          estimate_above=10**9)
        path = WORK / "judge_ceiling.sqlite"
        path.unlink(missing_ok=True)
        items = [ScoreItem(f"{statement} ({i})", "It sounds like you feel worn out. What helps?") for i in range(512)]
        start = time.perf_counter()
        make_judge(cfg, path).score_many(items, progress=False)
        ceiling = len(items) / (time.perf_counter() - start)
    for concurrency in (1, 8, 32, 64):
        n = max(50, concurrency * 16)  # long enough for a steady state past client start-up
        with server_in_own_process(latency=latency, max_lifetime_s=1800) as base_url:
            cfg = JudgeConfig(backend="openai", model="gpt-4o-mini", base_url=base_url, concurrency=concurrency,
                              estimate_above=10**9)
            path = WORK / f"judge_c{concurrency}.sqlite"
            path.unlink(missing_ok=True)
            judge = make_judge(cfg, path)
            items = [ScoreItem(f"{statement} ({i})", "It sounds like you feel worn out. What helps?") for i in range(n)]
            start = time.perf_counter()
            judge.score_many(items, progress=False)
            seconds = time.perf_counter() - start
            ideal = concurrency / latency
            warm_start = time.perf_counter()
            judge.score_many(items, progress=False)
            warm = n / (time.perf_counter() - warm_start)
            rows.append({"concurrency": concurrency, "judgments": n, "judgments/s": n / seconds,
                         "ideal/s": ideal, "ratio to ideal": n / seconds / ideal,
                         "ratio to min(ideal, CPU ceiling)": n / seconds / min(ideal, ceiling),
                         "warm cache judgments/s": warm})
    (WORK / "rubric.sqlite").unlink(missing_ok=True)  # a cold cache
    rubric = make_judge(JudgeConfig(backend="rubric"), WORK / "rubric.sqlite")
    items = [ScoreItem(f"{statement} ({i})", "It sounds like you feel worn out. What helps?") for i in range(2000)]
    start = time.perf_counter()
    rubric.score_many(items, progress=False)
    rubric_rate = len(items) / (time.perf_counter() - start)
    return ("## Judge throughput\n\nOpenAI-compatible backend against the loopback server (standin/openai_server.py, "
            "in a process of its own as a real endpoint would be) with 100 ms latency per request; ideal = "
            "concurrency / latency.\n\n"
            + f"CPU ceiling: with no latency at all, client and server together manage {ceiling:,.0f} judgments/s at "
              "concurrency 32 on this machine's cores (the server answers each request by running the rubric judge); "
              "above that rate no concurrency setting can help, so the last ratio compares with what is achievable "
              "here.\n\n"
            + table(rows, ["concurrency", "judgments", "judgments/s", "ideal/s", "ratio to ideal",
                           "ratio to min(ideal, CPU ceiling)", "warm cache judgments/s"])
            + "\n\n" + next(f"- concurrency 32: {r['ratio to ideal']:.2f} of the ideal against the 0.8 target: "
                            + ("met" if r["ratio to ideal"] >= 0.8 else
                               f"not met; the CPU ceiling of this 2-core machine ({ceiling:.0f}/s, client and server "
                               f"together) is below the ideal 320/s, and against that ceiling the ratio is "
                               f"{r['ratio to min(ideal, CPU ceiling)']:.2f}")
                            for r in rows if r["concurrency"] == 32)
            + f"\n\nRubric judge (offline), cold cache: {rubric_rate:,.0f} judgments/s.")


def generation_and_training() -> str:
    import torch

    from psyco_utils.config import load_profile
    from psyco_utils.models import GenerationStats, generate_responses, load_policy
    from psyco_utils.tiny import build_tiny_world

    cfg = load_profile("tiny", ["reuse_trained_models=false"])  # throughput of training, not of loading a saved model
    world = build_tiny_world(WORK / "tiny_world", cfg.models.tiny, cfg.seed)
    model, tok = load_policy(str(world.policy_dir), cfg.models)
    statements = [f"I keep worrying about my exams and my family, number {i}." for i in range(32)]
    rows = []
    for label, batch, n in (("batched, 32 prompts per call", 32, 1), ("one prompt per call", 1, 1),
                            ("batched, 8 samples per prompt", 4, 8), ("batched, 4 samples per prompt", 8, 4),
                            ("batched, 2 samples per prompt", 16, 2)):
        prompts = statements if n == 1 else statements[: 32 // n * 2]
        stats = GenerationStats()
        generate_responses(model, tok, prompts, n=n, temperature=1.0, max_new_tokens=64, batch_size=batch, stats=stats)
        rows.append({"setting": label, "prompts": len(prompts), "samples": stats.samples,
                     "new tokens": stats.new_tokens, "seconds": stats.seconds, "tokens/s": stats.tokens_per_second})
    text = ("## Generation (tiny policy, 64 new tokens, temperature 1.0)\n\n"
            + table(rows, ["setting", "prompts", "samples", "new tokens", "seconds", "tokens/s"]))
    # reward model and DPO throughput on the tiny models, at two data sizes each
    import datasets

    from psyco_utils import policy, reward

    frame_rows = []
    corpus_statements = [f"Statement {i}: I feel lonely since I moved and I cannot sleep." for i in range(256)]
    good = "It sounds like you feel lonely. What would help you feel more at home?"
    bad = "Just get over it."
    for n in (64, 256):
        ds = datasets.Dataset.from_dict({"ID": [str(i) for i in range(n)], "prefID": list(range(n)),
                                         "question": corpus_statements[:n], "chosen": [good] * n, "rejected": [bad] * n})
        start = time.perf_counter()
        out = policy.train_dpo({**cfg.dpo.training, "num_train_epochs": 1}, str(world.policy_dir), ds,
                               WORK / f"dpo_{n}", seed=0, reuse=False)
        frame_rows.append({"stage": "DPO", "pairs": n, "steps": out.steps, "seconds": out.seconds,
                           "steps/s": out.steps_per_second, "pairs/s": n / out.seconds})
        args = reward.reward_config(cfg, WORK / f"rm_{n}", has_dev=False)
        args.num_train_epochs = 1
        start = time.perf_counter()
        reward.train_reward_model(cfg, ds, None, WORK / f"rm_{n}", WORK, args=args)
        seconds = time.perf_counter() - start
        steps = -(-n // args.per_device_train_batch_size)
        frame_rows.append({"stage": "reward model", "pairs": n, "steps": steps, "seconds": seconds,
                           "steps/s": steps / seconds, "pairs/s": n / seconds})
    text += ("\n\n## Training throughput (tiny models, one epoch)\n\n"
             + table(frame_rows, ["stage", "pairs", "steps", "seconds", "steps/s", "pairs/s"]))
    del torch
    return text


def scaling() -> str:
    """How the cleaning pipeline and the rubric judge grow with the number of statements."""
    import pandas as pd

    from psyco_utils import data
    from psyco_utils.config import DataConfig, SourceConfig
    from psyco_utils.judge import JudgeConfig, ScoreItem, make_judge

    statements, responses = data.load_bundled_corpus()
    base = statements["text"].tolist()
    rows = []
    for copies in (1, 4, 16):
        texts = [f"{t} (variant {k} of the same worry, told again with new words number {k * 7919 % 1000})"
                 for k in range(copies) for t in base]
        path = WORK / f"scale_{copies}.jsonl"
        pd.DataFrame({"text": texts}).to_json(path, orient="records", lines=True)
        cfg = DataConfig(sources=[SourceConfig(kind="jsonl", name="scale", path=str(path))])
        start = time.perf_counter()
        kept, _ = data.prepare_statements(cfg)
        clean_s = time.perf_counter() - start
        (WORK / f"scale_{copies}.sqlite").unlink(missing_ok=True)  # a cold cache
        judge = make_judge(JudgeConfig(backend="rubric"), WORK / f"scale_{copies}.sqlite")
        items = [ScoreItem(t, r) for t in texts[: len(texts)] for r in responses["text"].iloc[:4]]
        start = time.perf_counter()
        judge.score_many(items, progress=False)
        judge_s = time.perf_counter() - start
        rows.append({"statements in": len(texts), "kept": len(kept), "cleaning s": clean_s,
                     "rubric judgments": len(items), "judging s": judge_s})
    return ("## Scaling with the number of statements\n\nThe bundled statements repeated with variations (many "
            "become near duplicates, which is the point: MinHash keeps near de-duplication close to linear).\n\n"
            + table(rows, ["statements in", "kept", "cleaning s", "rubric judgments", "judging s"]))


def scaling_pool_and_rounds() -> str:
    """How the response pool (generation and judging) grows with responses per statement, and DPO-Iter with rounds."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from psyco_utils import data, policy, pool
    from psyco_utils.config import load_profile
    from psyco_utils.judge import JudgeConfig, ScoreItem, make_judge
    from psyco_utils.reward import RewardScorer

    cfg = load_profile("tiny", ["reuse_trained_models=false"])
    statements, _ = data.prepare_statements(cfg.data)
    pool_rows = []
    for k in (2, 4, 6):
        # reuse off: the pool would otherwise come from the batches an earlier size saved under pool/partial/
        sized = load_profile("tiny", ["reuse_trained_models=false", f"pool.responses_per_statement={k}"])
        start = time.perf_counter()
        responses, stats = pool.build_pool(statements, sized, WORK, progress=False)
        pool_s = time.perf_counter() - start
        (WORK / f"pool_{k}.sqlite").unlink(missing_ok=True)  # a cold cache
        judge = make_judge(JudgeConfig(backend="rubric"), WORK / f"pool_{k}.sqlite")
        text = statements.set_index("statement_id")["text"]
        items = [ScoreItem(text[row.statement_id], row.response) for row in responses.itertuples()]
        start = time.perf_counter()
        judge.score_many(items, progress=False)
        pool_rows.append({"responses per statement": k, "responses": len(responses),
                          "from the tiny policy": int(stats.loc[stats["kind"] == "hf", "produced"].sum()),
                          "pool s": pool_s, "rubric judging s": time.perf_counter() - start})
    # DPO-Iter: a reward model with the tiny backbone's shape (its head untrained: the timing, not the scores, is
    # measured here), 32 statements x 8 samples per round
    scorer_dir = WORK / "scaling_scorer"
    from psyco_utils.models import resolve_model_path

    policy_dir = resolve_model_path("tiny", cfg, WORK)
    AutoModelForSequenceClassification.from_pretrained(policy_dir, num_labels=1).save_pretrained(scorer_dir)
    AutoTokenizer.from_pretrained(policy_dir).save_pretrained(scorer_dir)
    scorer = RewardScorer.load(scorer_dir, cfg)
    questions = statements.rename(columns={"statement_id": "ID", "text": "question"})[["ID", "question"]].head(32)
    round_rows = []
    for rounds in (1, 2, 3):
        it_cfg = load_profile("tiny", ["reuse_trained_models=false", f"dpo_iter.rounds={rounds}",
                                       "dpo_iter.statements_per_round=32", "dpo_iter.max_new_tokens=64"])
        out = WORK / f"dpo_iter_{rounds}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        done = policy.run_dpo_iter(it_cfg, policy_dir, scorer, questions, out, progress=lambda *_: None)
        seconds = time.perf_counter() - start
        round_rows.append({"rounds": rounds, "pairs": int(done.rounds["pairs"].sum()), "seconds": seconds,
                           "seconds per round": seconds / rounds,
                           "of which sampling and scoring s": float((done.rounds["round_seconds"] - done.rounds["dpo_seconds"]).sum()),
                           "of which DPO s": float(done.rounds["dpo_seconds"].sum())})
    return ("## Scaling with the pool size\n\nChapter 01's pool on the bundled statements (the tiny profile's seven "
            "generators: five bundled styles, the tiny policy at two temperatures), then the rubric judge on every "
            "response.\n\n"
            + table(pool_rows, ["responses per statement", "responses", "from the tiny policy", "pool s",
                                "rubric judging s"])
            + "\n\n## Scaling with DPO-Iter rounds\n\n32 statements x 8 samples per round, 64 new tokens, two DPO "
              "epochs per round (the tiny profile's) on the best-against-worst pairs; each round starts from (and is referenced to) the "
              "previous round's policy.\n\n"
            + table(round_rows, ["rounds", "pairs", "seconds", "seconds per round", "of which sampling and scoring s",
                                 "of which DPO s"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-book", action="store_true", help="skip the cold and warm whole-book runs")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    sections = []
    import torch

    versions = {}
    from importlib import metadata

    for name in ("torch", "transformers", "trl", "openai", "papermill", "jupyter-book"):
        versions[name] = metadata.version(name)
    header = (f"# Benchmarks\n\nWritten by `benchmarks/run.py` on {time.strftime('%Y-%m-%d %H:%M %Z')}.\n\n"
              f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
              f"Python {platform.python_version()}\n- versions: "
              + ", ".join(f"{k} {v}" for k, v in versions.items()) + "\n"
              "- targets (issue): whole tiny book under 5 minutes, warm re-run under 90 s, peak memory under 3 GiB, "
              "judge at concurrency 32 at least 0.8 of ideal\n")
    saved = WORK / "book_section.md"
    if not args.no_book:
        text, _ = book_runs()
        saved.write_text(text)
        sections.append(text)
    elif saved.exists():
        sections.append(saved.read_text() + f"\n\n(Book runs measured {time.ctime(saved.stat().st_mtime)}.)")
    sections.append(judge_throughput())
    sections.append(generation_and_training())
    sections.append(scaling())
    sections.append(scaling_pool_and_rounds())
    sections.append(gpu_section_kept())
    out = ROOT / "benchmarks" / "RESULTS.md"
    out.write_text(header + "\n" + "\n\n".join(sections) + "\n")
    print(out.read_text())


def gpu_section_kept() -> str:
    """The GPU section that ``benchmarks/gpu_check.py --write`` left last in RESULTS.md, or a line saying that no GPU
    was measured: a CPU re-run of this script does not erase GPU measurements."""
    from gpu_check import HEADING

    results = ROOT / "benchmarks" / "RESULTS.md"
    old = results.read_text() if results.exists() else ""
    if HEADING + "\n" in old and "benchmarks/gpu_check.py" in old:
        return old[old.index(HEADING + "\n"):].strip()
    return ("## GPU\n\nNo GPU machine was lent to the session that wrote this file, so HF generate against vLLM and "
            "GPU training throughput are not measured here: run benchmarks/gpu_check.py on a CUDA machine.")


if __name__ == "__main__":
    main()
