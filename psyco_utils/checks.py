"""Quality checks in the chapters: stop the run (``enforce``) or record and show the failure (``report``).

A chapter states what must hold for its results to mean something (the reward model beats chance, DPO raises the
held-out reward, ...) with :func:`require`.  The profile's ``checks`` setting decides what a failure does:

* ``enforce`` (the default, for real runs): raise :class:`CheckFailed`, whose message names the check; the runner
  then stops with the chapter and the cell.
* ``report`` (the stand-in runs, whose random-weight models cannot be expected to learn anything): record the failure
  in the run manifest under the chapter's stage, show it on the page in a warning box, and go on.

Either way a passing check is recorded too, so the manifest lists every check a chapter made.  A check marked
``model_quality`` tests what training achieved (the reward model beats chance, DPO raises the held-out reward); the
others test that the code computes what it should (a loss by hand equals TRL's, every pool response was judged), and
must pass whatever the models are: the stand-in run reports any of them failing as a problem.
The displayed box carries the output metadata key :data:`OUTPUT_METADATA_KEY`, which ``psyco-book build`` reads.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

OUTPUT_METADATA_KEY = "psyco_check"


class CheckFailed(AssertionError):
    """A chapter's quality check failed under ``checks: enforce``."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str
    mode: str
    model_quality: bool = False

    def as_record(self) -> dict:
        return {"name": self.name, "passed": self.passed, "message": self.message, "mode": self.mode,
                "model_quality": self.model_quality}


def require(chapter, name: str, condition: bool, message: str, model_quality: bool = False) -> CheckResult:
    """Check ``condition`` for ``chapter``; ``message`` says what was measured, pass or fail; ``model_quality`` marks
    a check of what training achieved, which random-weight stand-ins cannot be expected to pass.

    Under ``enforce`` a failure raises :class:`CheckFailed`; under ``report`` it is recorded in the manifest and
    shown in a warning box.  Returns the result either way.
    """
    mode = chapter.cfg.checks
    result = CheckResult(name=name, passed=bool(condition), message=message, mode=mode, model_quality=model_quality)
    chapter.record_check(result)
    if result.passed:
        return result
    if mode == "enforce":
        raise CheckFailed(f"check {name!r} failed: {message}")
    _show_failure(result)
    return result


def _show_failure(result: CheckResult) -> None:
    from IPython.display import HTML, display

    box = (f'<div class="admonition warning"><p class="admonition-title">Check failed (recorded, not enforced): '
           f"{html.escape(result.name)}</p><p>{html.escape(result.message)}</p><p>This run used "
           "<code>checks: report</code>, so the chapter went on; with <code>checks: enforce</code> it would have "
           "stopped here.</p></div>")
    display(HTML(box), metadata={OUTPUT_METADATA_KEY: result.as_record()})


__all__ = ["CheckFailed", "CheckResult", "OUTPUT_METADATA_KEY", "require"]
