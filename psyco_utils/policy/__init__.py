"""Policy training: offline DPO (chapter 04) and the iterative online DPO loop, DPO-Iter (chapter 05).

``training``  one DPO training through TRL's ``DPOTrainer``, reused when its inputs are unchanged
``held_out``  sampling a policy, scoring its answers with the reward model, comparing policies on held-out statements
``offline``   offline DPO's result
``iterative`` the DPO-Iter loop and its result
``sampling``  DPO-Iter's samples and rewards, saved per batch so that a stopped round resumes

Everything is importable from ``psyco_utils.policy`` directly.
"""

from .held_out import *  # noqa: F401,F403
from .held_out import __all__ as _held_out
from .iterative import *  # noqa: F401,F403
from .iterative import __all__ as _iterative
from .offline import *  # noqa: F401,F403
from .offline import __all__ as _offline
from .sampling import *  # noqa: F401,F403
from .sampling import __all__ as _sampling
from .training import *  # noqa: F401,F403
from .training import __all__ as _training

__all__ = [*_training, *_held_out, *_offline, *_iterative, *_sampling]
