"""The Bradley-Terry reward model (chapter 03), one module per stage.

* :mod:`.data`: what the reward model reads (token lengths as TRL renders them, the pairs TRL drops for length,
  HelpSteer2 pairs for the paper's mixing ablation).  Pairs follow :mod:`psyco_utils.pair_schema`.
* :mod:`.training`: TRL's ``RewardConfig`` from the profile, a :class:`TrainingPlan` the chapter builds its
  ``RewardTrainer`` from, and :func:`train_reward_model` for the whole training in one call.
* :mod:`.scoring`: :class:`RewardScorer`; chapters 04 to 06 load chapter 03's model with
  :func:`load_trained_reward_model`.
* :mod:`.ablation`: the paper's data ablation (HelpSteer2 alone, mixes, a fixed pair budget), trained and scored.
* :mod:`.benchmark`: RewardBench's schema, loader and accuracy per subset and category.
* :mod:`.ranker`: an LLM as a ranker of the test pairs, through the judge's ``compare`` in both orders.
* :mod:`.evaluation`: baselines, calibration, breakdowns, the paired difference with the length baseline, the
  artifacts; :func:`evaluate` and :func:`finish` return the stage's result objects.
"""

from ..pair_schema import PairSchemaError, conversation
from .data import *  # noqa: F401,F403
from .data import __all__ as _data_all
from .ablation import *  # noqa: F401,F403
from .ablation import __all__ as _ablation_all
from .benchmark import *  # noqa: F401,F403
from .benchmark import __all__ as _benchmark_all
from .evaluation import *  # noqa: F401,F403
from .evaluation import __all__ as _evaluation_all
from .ranker import *  # noqa: F401,F403
from .ranker import __all__ as _ranker_all
from .scoring import *  # noqa: F401,F403
from .scoring import __all__ as _scoring_all
from .training import *  # noqa: F401,F403
from .training import __all__ as _training_all

__all__ = ["PairSchemaError", "conversation", *_data_all, *_training_all, *_scoring_all, *_evaluation_all,
           *_ablation_all, *_benchmark_all, *_ranker_all]
