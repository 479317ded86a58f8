"""Every figure and table of the book.  Chapters call these and draw nothing by hand.

``base`` holds what all pages share (figure size and style, styled tables, findings as Markdown); the other modules
hold the figures of one stage each.  Everything is importable from ``psyco_utils.show`` directly.
"""

from .base import *  # noqa: F401,F403
from .dataset import *  # noqa: F401,F403
from .reward import *  # noqa: F401,F403
from .policy import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .reproducibility import *  # noqa: F401,F403
from .judging import *  # noqa: F401,F403
from .launch import *  # noqa: F401,F403

from . import base, dataset, evaluation, judging, launch, policy, reproducibility, reward

__all__ = [name for module in (base, dataset, judging, reward, policy, evaluation, reproducibility, launch)
           for name in module.__all__]
