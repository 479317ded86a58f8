"""Both training stages return the same shape: a TrainingOutcome with TRL's logs read the same way."""

from pathlib import Path

from psyco_utils import policy, reward
from psyco_utils.training import TrainingOutcome

LOG = [{"epoch": 0.5, "step": 1, "loss": 0.69}, {"epoch": 1.0, "step": 2, "loss": 0.41},
       {"epoch": 1.0, "step": 2, "eval_loss": 0.5}, {"train_runtime": 3.0, "step": 2}]


def _both(log):
    dpo = policy.TrainingRun(model_dir=Path("dpo/model"), reference="base", pairs=8, steps=2, seconds=3.0,
                             log_history=log)
    rm = reward.RewardTrainingResult(model_dir=Path("reward_model/model"), model=None, tokenizer=None, log_history=log,
                                     pairs_given=8, train_pairs=8, epochs=1, seconds=3.0, selected_by="loss",
                                     best_checkpoint=None, best_metric=None, peak_memory_mb=1.0)
    return dpo, rm


def test_the_reward_model_and_dpo_trainings_share_one_outcome():
    dpo, rm = _both(LOG)
    for outcome in (dpo, rm):
        assert isinstance(outcome, TrainingOutcome) and not outcome.reused
        assert outcome.train_log["loss"].tolist() == [0.69, 0.41] and outcome.final_train_loss == 0.41
        assert outcome.eval_log["eval_loss"].tolist() == [0.5]


def test_a_training_without_logs_has_empty_tables():
    for outcome in _both([]):
        assert outcome.train_log.empty and outcome.eval_log.empty and outcome.final_train_loss is None
