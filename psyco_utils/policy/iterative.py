"""DPO-Iter, the iterative online DPO loop (chapter 05).

Each round samples ``statements_per_round`` training statements, draws ``samples_per_statement`` responses to each from
the current policy, scores them with the chapter-03 reward model, pairs the best against the worst, and trains one
round of DPO (:func:`psyco_utils.policy.train_dpo`) whose starting policy and reference are the previous round's
saved policy (the reference refresh of the RLHFlow recipe).  TRL's online DPO trainer samples only two completions
per prompt; the paper takes the best and the worst of eight, hence this explicit loop around ``DPOTrainer``.

**Resume.**  A round's samples and their rewards are saved per batch of statements as they are drawn
(:mod:`psyco_utils.policy.sampling`), its pairs before training, and its model with the training's reuse record.  A
loop run again after a crash or a lost runtime reads every finished round back (samples, rewards, pairs and trained
model), draws only the missing batches of a half-sampled round, and trains from there.

**Under a launcher** (``accelerate launch`` or ``torchrun`` with several processes) only the main process samples,
scores and writes; the others wait for it (:func:`psyco_utils.distributed.wait_for_everyone`), read the round's
pairs from ``pairs.parquet``, and every process trains the round together.  On one process nothing waits.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import distributed
from ..layout import METRICS_FILE, TrainedModelFolder, dpo_iter_round_folder
from ..pair_schema import TRAINING_COLUMNS
from .held_out import HeldOutComparison, Samples
from .sampling import SamplingSettings, sample_and_score_in_batches
from .training import train_dpo

__all__ = ["DPOIterResult", "best_worst_pairs", "pairs_dataset", "round_summary", "run_dpo_iter", "finish_dpo_iter",
           "training_statements", "dpo_iter_start"]


def best_worst_pairs(rewards: np.ndarray, usable: np.ndarray | None = None) -> tuple[list[tuple[int, int, int]], int]:
    """For each row (a statement's samples), the highest against the lowest reward: ``[(row, best, worst)]``.

    Only samples marked ``usable`` (all by default) take part: an empty answer cannot be one side of a DPO pair.  A row
    with fewer than two usable samples, or whose usable samples all score the same, gives no pair; the number of such
    rows is returned too.  Ties for best or worst go to the earliest sample, so the selection is deterministic.
    """
    values_all = np.asarray(rewards, float)
    usable = np.ones(values_all.shape, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    pairs, degenerate = [], 0
    for row, values in enumerate(values_all):
        kept = np.flatnonzero(usable[row])
        if len(kept) < 2 or values[kept].max() == values[kept].min():
            degenerate += 1
            continue
        best, worst = int(kept[np.argmax(values[kept])]), int(kept[np.argmin(values[kept])])
        pairs.append((row, best, worst))
    return pairs, degenerate


def _answered(samples: Samples) -> np.ndarray:
    """Which samples have text (an empty answer, the end token drawn first, is kept out of the pairs and counted)."""
    return np.array([[bool(str(text).strip()) for text in row] for row in samples.responses], dtype=bool)


def pairs_dataset(samples: Samples, ids: list[str], round_index: int):
    """The round's best-versus-worst pairs as ``(Dataset, DataFrame, degenerate statements)``, with the columns DPO
    needs and the rewards and round, for the book."""
    import datasets

    chosen_pairs, degenerate = best_worst_pairs(samples.rewards, _answered(samples))
    rows = [{"ID": ids[r], "prefID": k, "question": samples.statements[r], "chosen": samples.responses[r][b],
             "rejected": samples.responses[r][w], "reward_chosen": float(samples.rewards[r, b]),
             "reward_rejected": float(samples.rewards[r, w]), "round": round_index}
            for k, (r, b, w) in enumerate(chosen_pairs)]
    frame = pd.DataFrame(rows, columns=[*TRAINING_COLUMNS, "reward_chosen", "reward_rejected", "round"])
    return datasets.Dataset.from_pandas(frame, preserve_index=False), frame, degenerate


def round_summary(samples: Samples, frame: pd.DataFrame, degenerate: int) -> dict:
    """One round's numbers before training: the samples' rewards (mean, best and worst of each statement's samples,
    averaged), their length, the empty answers (kept out of the pairs), the pairs made, the statements that gave no
    pair and the pairs' reward margin."""
    raw = samples.raw_rewards
    margin = float((frame["reward_chosen"] - frame["reward_rejected"]).mean()) if len(frame) else 0.0
    return {"statements": len(samples.statements), "samples_per_statement": samples.rewards.shape[1],
            "mean_reward": float(raw.mean()), "best_reward": float(raw.max(axis=1).mean()),
            "worst_reward": float(raw.min(axis=1).mean()), "mean_length_tokens": float(samples.lengths.mean()),
            "empty_samples": int((~_answered(samples)).sum()),
            "pairs": len(frame), "degenerate_statements": degenerate, "mean_pair_margin": margin,
            "sample_batches_reused": samples.batches_reused,
            "generation_seconds": samples.generation_seconds,
            "tokens_per_second": samples.new_tokens / samples.generation_seconds if samples.generation_seconds else 0.0}


@dataclass
class DPOIterResult:
    """The DPO-Iter rounds: one summary row per round, each round's pairs and model under ``out_root/round_<k>/``,
    and (after :func:`finish_dpo_iter`) the held-out comparison with the base and DPO policies."""

    start_from: str
    start_path: str
    rounds: pd.DataFrame  # round_summary rows plus round, reference, policy, DPO steps and times, reuse
    out_root: Path
    held_out: HeldOutComparison | None = None

    @property
    def final_policy(self) -> str:
        return str(self.rounds["policy"].iloc[-1])

    @property
    def total_steps(self) -> int:
        return int(self.rounds["dpo_steps"].sum())

    @property
    def degenerate_statements(self) -> int:
        """Statements, over all rounds, whose samples all scored the same and so gave no pair."""
        return int(self.rounds["degenerate_statements"].sum())

    def pairs(self, round_index: int | None = None) -> pd.DataFrame:
        """The pairs one round trained on (the last round by default), read from ``round_<k>/pairs.parquet``."""
        k = int(self.rounds["round"].iloc[-1]) if round_index is None else round_index
        return pd.read_parquet(dpo_iter_round_folder(self.out_root, k).pairs)

    def example_pair(self, round_index: int | None = None) -> pd.Series:
        """The round's pair with the highest-scoring best sample, among statements without crisis language."""
        from ..crisis import crisis_signals

        pairs = self.pairs(round_index)
        calm = pairs[~pairs["question"].map(lambda q: bool(crisis_signals(q)))]
        return (calm if len(calm) else pairs).sort_values("reward_chosen", ascending=False, kind="stable").iloc[0]

    def headline(self) -> dict:
        """The numbers recorded in the run manifest."""
        rewards = self.held_out.metrics()["held_out_mean_reward"] if self.held_out is not None else {}
        return {"rounds": len(self.rounds), "total_dpo_steps": self.total_steps,
                **{f"held_out_reward_{name}": round(value, 3) for name, value in rewards.items()}}

    def metrics(self) -> dict:
        """What ``dpo_iter/metrics.json`` holds (chapter 06 reads the held-out numbers from it)."""
        rounds = self.rounds.drop(columns=["policy", "reference"]).to_dict("records")
        out = {"rounds": rounds, "start_from": self.start_from, "final_policy": self.final_policy,
               "total_dpo_steps": self.total_steps, "degenerate_statements": self.degenerate_statements}
        return {**out, **(self.held_out.metrics() if self.held_out is not None else {})}


def dpo_iter_start(cfg, run_root: Path) -> str:
    """The policy round 1 starts from (and is referenced to): the base policy, or chapter 04's DPO policy, as the
    profile's ``dpo_iter.start_from`` says."""
    from ..models import resolve_model_path
    from .offline import offline_model_dir

    if cfg.dpo_iter.start_from == "dpo":
        return str(offline_model_dir(run_root))
    return resolve_model_path(cfg.models.policy, cfg)


def training_statements(train) -> pd.DataFrame:
    """One row (ID, question) per training statement, the pool DPO-Iter draws each round's statements from."""
    frame = train if isinstance(train, pd.DataFrame) else train.to_pandas()
    return frame.drop_duplicates("ID")[["ID", "question"]].reset_index(drop=True)


def _round_samples(cfg, k: int, policy_path: str, scorer, chosen: pd.DataFrame, folder: TrainedModelFolder,
                   on_sample) -> Samples:
    """Round ``k``'s samples and rewards, read back from its saved batches where they exist (see the module)."""
    return sample_and_score_in_batches(policy_path, cfg.models, scorer, chosen["ID"].tolist(),
                                       chosen["question"].tolist(), SamplingSettings.for_round(cfg, k),
                                       samples_dir=folder.samples, reuse=cfg.reuse_trained_models,
                                       on_event=on_sample)


def _one_round(cfg, k: int, policy_path: str, scorer, chosen: pd.DataFrame, round_dir: Path, on_sample=None) -> dict:
    """Sample, pair and train round ``k``; under a launcher only the main process samples and writes."""
    it, folder, main = cfg.dpo_iter, TrainedModelFolder(round_dir), distributed.is_main_process()
    start = time.perf_counter()
    if main:
        samples = _round_samples(cfg, k, policy_path, scorer, chosen, folder, on_sample)
        dataset, frame, degenerate = pairs_dataset(samples, chosen["ID"].tolist(), k)
        frame.to_parquet(folder.pairs, index=False)
    distributed.wait_for_everyone()  # the other processes wait for the main one's pairs
    if not main:
        import datasets

        frame = pd.read_parquet(folder.pairs)
        dataset = datasets.Dataset.from_pandas(frame, preserve_index=False)
    if len(frame) == 0:
        raise RuntimeError(f"DPO-Iter round {k}: all {len(chosen)} statements' samples scored the same; no pairs to "
                           "train on")
    training = train_dpo(it.training, policy_path, dataset, round_dir, seed=cfg.seed + k, lora=cfg.models.lora,
                         reuse=cfg.reuse_trained_models, section="dpo_iter.training")
    if main:
        summary = {"round": k, **round_summary(samples, frame, degenerate), "reference": policy_path,
                   "policy": str(training.model_dir), "dpo_seconds": training.seconds, "dpo_steps": training.steps,
                   "dpo_steps_per_second": training.steps_per_second, "dpo_reused": training.reused,
                   "round_seconds": time.perf_counter() - start, "final_train_loss": training.final_train_loss}
        folder.metrics.write_text(json.dumps(summary, indent=2))
    distributed.wait_for_everyone()  # the round's model and metrics are written before anyone reads them
    return summary if main else json.loads(folder.metrics.read_text())


def _start_process_group() -> None:
    """Under a launcher, join its process group before the first barrier (the round's trainer would join it only
    after sampling); accelerate's shared state is the one TRL's trainers use afterwards."""
    if distributed.world_size() > 1:
        from accelerate import PartialState

        PartialState()


def run_dpo_iter(cfg, start_path: str, scorer, train_questions: pd.DataFrame, out_root: Path,
                 progress=None, on_sample=None) -> DPOIterResult:
    """The DPO-Iter loop (see the module's docstring); every round is saved under ``out_root/round_<k>/``.

    Each finished round is reported to ``progress`` (a callable taking one line of text) when given, and always to
    the runner's progress file (:func:`psyco_utils.judge.progress.write_progress`), which the terminal shows.
    ``on_sample`` is called with each :class:`psyco_utils.policy.sampling.SampleEvent` (tests stop a round with it).
    Under a launcher every process calls this; see the module for who does what."""
    from ..judge.progress import write_progress

    it, out_root = cfg.dpo_iter, Path(out_root)
    _start_process_group()
    rng = np.random.default_rng(cfg.seed)
    policy_path, rounds = str(start_path), []
    for k in range(1, it.rounds + 1):
        round_dir = dpo_iter_round_folder(out_root, k).root
        round_dir.mkdir(parents=True, exist_ok=True)
        n = min(it.statements_per_round, len(train_questions))
        chosen = train_questions.iloc[np.sort(rng.choice(len(train_questions), size=n, replace=False))]
        summary = _one_round(cfg, k, policy_path, scorer, chosen, round_dir, on_sample)
        rounds.append(summary)
        if distributed.is_main_process():
            write_progress("DPO-Iter rounds", k, 0, it.rounds, 1 / max(summary["round_seconds"], 1e-9), 0.0)
        if progress is not None:
            progress(f"round {k}: {summary['pairs']} pairs, mean reward {summary['mean_reward']:.3f}, "
                     f"{summary['round_seconds']:.1f} s" + (" (DPO model reused)" if summary["dpo_reused"] else "")
                     + (f" ({summary['sample_batches_reused']} sample batches read back)"
                        if summary["sample_batches_reused"] else ""))
        policy_path = summary["policy"]
    return DPOIterResult(start_from=it.start_from, start_path=str(start_path), rounds=pd.DataFrame(rounds),
                         out_root=out_root)


def finish_dpo_iter(result: DPOIterResult, held_out: HeldOutComparison) -> DPOIterResult:
    """The result with its held-out comparison, saved to ``out_root/metrics.json``."""
    finished = replace(result, held_out=held_out)
    (finished.out_root / METRICS_FILE).write_text(json.dumps(finished.metrics(), indent=2, default=float))
    return finished
