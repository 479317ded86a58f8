"""DPO-Iter resumes: a round stopped mid-generation draws only its missing batches, a finished round is read back
whole (samples, rewards, pairs, model), and under a launcher only the main process samples and writes.

A crash is simulated by raising from the loop's own sampling hook after a number of batches (an event, never the
clock); every call of ``generate_responses`` is counted with the statements it was sent.
"""

import json

import numpy as np
import pandas as pd
import pytest

from psyco_utils import distributed, models, policy
from psyco_utils.config import load_profile
from psyco_utils.policy import iterative, sampling

# 7 statements per round in batches of 2: 4 generation calls per round, the last one of a single statement
LOOP = ["dpo_iter.rounds=2", "dpo_iter.statements_per_round=7", "dpo_iter.samples_per_statement=3",
        "dpo_iter.max_new_tokens=12", "dpo_iter.training.num_train_epochs=1",
        "dpo_iter.training.per_device_train_batch_size=4", "pool.generation_batch_size=2"]


class SavedRuleScorer:
    """A reward model with the scorer's interface whose 'weights' are a file in a folder (``source_path``), so the
    samples' fingerprint can name them: rewards reflective words, penalises orders."""

    def __init__(self, folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rule.txt").write_text("feel +1, sounds +1, should -1, 0.01 per word")
        self.source_path = str(folder)
        self.calls = 0

    def score(self, statements, responses, batch_size=32):
        self.calls += 1
        return np.array([r.lower().count("feel") + r.lower().count("sounds") - r.lower().count("should")
                         + 0.01 * len(r.split()) for r in responses], dtype=float)


def _questions():
    return pd.DataFrame({"ID": [f"s{i}" for i in range(9)],
                         "question": [f"I feel anxious about my exams and my family, case {i}." for i in range(9)]})


class Crash(RuntimeError):
    """What the hook raises to stand for a killed run."""


class StopAfter:
    """Records the loop's sampling events; raises after the ``stop_after``-th batch is drawn."""

    def __init__(self, stop_after=None):
        self.events, self.stop_after = [], stop_after

    def __call__(self, event: sampling.SampleEvent):
        self.events.append((event.kind, event.batch))
        if event.kind == "drawn" and sum(kind == "drawn" for kind, _ in self.events) == self.stop_after:
            raise Crash(f"killed after {self.stop_after} batches")


@pytest.fixture
def drawn(monkeypatch):
    """Every generation call, as (seed, statements sent)."""
    calls, real = [], models.generate_responses

    def counting(model, tokenizer, statements, **kwargs):
        calls.append((kwargs["seed"], list(statements)))
        return real(model, tokenizer, statements, **kwargs)

    monkeypatch.setattr(models, "generate_responses", counting)
    return calls


def _run(tiny_world, folder, scorer, overrides=(), **kwargs):
    cfg = load_profile("tiny", [*LOOP, *overrides])
    return policy.run_dpo_iter(cfg, str(tiny_world.policy_dir), scorer, _questions(), folder, **kwargs)


def test_a_killed_round_resumes_without_drawing_any_sample_twice(tiny_world, tmp_path, drawn):
    whole = _run(tiny_world, tmp_path / "whole", SavedRuleScorer(tmp_path / "rm"))
    assert len(drawn) == 8  # 2 rounds x 4 batches
    drawn.clear()

    stop = StopAfter(stop_after=6)  # round 1's 4 batches, then 2 of round 2's
    with pytest.raises(Crash):
        _run(tiny_world, tmp_path / "b", SavedRuleScorer(tmp_path / "rm"), on_sample=stop)
    before = len(drawn)
    assert before == 6
    saved = sorted((tmp_path / "b" / "round_2" / "samples").glob("*/batch_*.json"))
    assert len(saved) == 2 and all("raw_rewards" not in json.loads(p.read_text()) for p in saved)

    lines, resumed = [], StopAfter()
    again = _run(tiny_world, tmp_path / "b", SavedRuleScorer(tmp_path / "rm"), on_sample=resumed, progress=lines.append)
    after = len(drawn) - before
    print(f"\nDPO-Iter resume: {before} batches drawn before the interruption, {after} after it, "
          f"{len(drawn)} in all against {8} uninterrupted")
    assert after == 2 and [e for e in resumed.events if e[0] == "drawn"] == [("drawn", 2), ("drawn", 3)]
    sent = [(seed, text) for seed, texts in drawn for text in texts]
    assert len(sent) == len(set(sent)) == 2 * 7  # every (round seed, statement) drawn exactly once
    assert again.rounds["sample_batches_reused"].tolist() == [4, 2]
    assert again.rounds["dpo_reused"].tolist() == [True, False]  # round 1's model is read back, not retrained
    assert "DPO model reused" in lines[0] and "2 sample batches read back" in lines[1]
    for k in (1, 2):
        pd.testing.assert_frame_equal(again.pairs(k), whole.pairs(k))
    columns = ["pairs", "mean_reward", "best_reward", "worst_reward", "mean_length_tokens", "dpo_steps"]
    pd.testing.assert_frame_equal(again.rounds[columns], whole.rounds[columns])


def test_a_finished_loop_run_again_draws_and_scores_nothing(tiny_world, tmp_path, drawn):
    scorer = SavedRuleScorer(tmp_path / "rm")
    first = _run(tiny_world, tmp_path / "run", scorer)
    drawn.clear()
    scorer.calls = 0
    again = _run(tiny_world, tmp_path / "run", scorer)
    assert drawn == [] and scorer.calls == 0
    assert again.rounds["dpo_reused"].all() and again.rounds["sample_batches_reused"].tolist() == [4, 4]
    assert again.final_policy == first.final_policy
    fresh = _run(tiny_world, tmp_path / "run", scorer, ["reuse_trained_models=false", "dpo_iter.rounds=1"])
    assert len(drawn) == 4 and fresh.rounds["sample_batches_reused"].tolist() == [0]


def test_a_round_stopped_while_scoring_scores_only_the_rest(tiny_world, tmp_path, drawn):
    class StopWhileScoring(StopAfter):
        def __call__(self, event):
            self.events.append((event.kind, event.batch))
            if event.kind == "scored" and event.batch == 1:
                raise Crash("killed while scoring")

    scorer = SavedRuleScorer(tmp_path / "rm")
    with pytest.raises(Crash):
        _run(tiny_world, tmp_path / "run", scorer, ["dpo_iter.rounds=1"], on_sample=StopWhileScoring())
    assert len(drawn) == 4 and scorer.calls == 2
    scorer.calls, resumed = 0, StopAfter()
    _run(tiny_world, tmp_path / "run", scorer, ["dpo_iter.rounds=1"], on_sample=resumed)
    assert len(drawn) == 4 and resumed.events == [("scored", 2), ("scored", 3)] and scorer.calls == 2


def test_a_changed_reward_model_or_statement_is_a_new_fingerprint(tiny_world, tmp_path):
    settings = sampling.SamplingSettings(n=2, temperature=1.0, max_new_tokens=8, batch_statements=2, seed=5)
    rm = SavedRuleScorer(tmp_path / "rm")
    key = sampling.samples_fingerprint(str(tiny_world.policy_dir), rm.source_path, ["a"], ["text"], settings, "float32")
    assert key == sampling.samples_fingerprint(str(tiny_world.policy_dir), rm.source_path, ["a"], ["text"], settings,
                                               "float32")
    (tmp_path / "rm" / "rule.txt").write_text("another rule")
    assert key != sampling.samples_fingerprint(str(tiny_world.policy_dir), rm.source_path, ["a"], ["text"], settings,
                                               "float32")
    assert key != sampling.samples_fingerprint(str(tiny_world.policy_dir), str(tmp_path / "rm"), ["a"], ["other"],
                                               settings, "float32")
    assert settings.batch_seed(0) == 5 and len({settings.batch_seed(b) for b in range(100)}) == 100


def test_under_a_launcher_a_process_that_is_not_the_main_one_draws_and_writes_nothing(tiny_world, tmp_path, drawn,
                                                                                    monkeypatch):
    scorer = SavedRuleScorer(tmp_path / "rm")
    main = _run(tiny_world, tmp_path / "run", scorer)  # what the main process wrote
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()}
    drawn.clear()
    barriers = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(distributed, "wait_for_everyone", lambda: barriers.append("barrier"))
    monkeypatch.setattr(iterative, "_start_process_group", lambda: None)
    other = _run(tiny_world, tmp_path / "run", scorer)
    assert drawn == [] and len(barriers) == 4  # two per round: before reading the pairs, after the training
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()} == written
    pd.testing.assert_frame_equal(other.rounds.drop(columns="round_seconds"), main.rounds.drop(columns="round_seconds"),
                                  check_dtype=False)
