"""What ``psyco-book`` sets up inside each notebook kernel it starts, before the chapter's first cell runs.

The kernel runs :data:`KERNEL_EXEC_LINE` (IPython ``exec_lines``), which calls :func:`prepare`:

* the lifeline (:func:`psyco_book.lifeline.bind_kernel_to_runner`): the kernel ends when ``psyco-book`` stops;
* progress bars go to ``psyco-book``'s terminal, never onto the page (:func:`progress_bars_to_terminal`).  ipykernel
  captures the kernel's standard error into the notebook, so a tqdm bar drawn by the package, by ``datasets``,
  ``transformers`` or TRL would be saved in the executed notebook and rendered on the page.  Every tqdm class is
  replaced by one that draws on the kernel's own standard error as it was before ipykernel captured it, which is the
  terminal ``psyco-book`` runs in; where that is not a terminal (a CI log, a file), the bars are switched off, and
  ``psyco-book``'s progress line (fed by the judge and the response pool) reports long loops instead.

A kernel that ``psyco-book`` did not start (Jupyter, Colab, VS Code) runs none of this and keeps its bars.
"""

from __future__ import annotations

import os
import sys

from .lifeline import bind_kernel_to_runner

#: The kernel's start-up line (IPython ``exec_lines``); it leaves no name behind in the notebook's namespace.
KERNEL_EXEC_LINE = "import psyco_book.kernel as _psyco_kernel; _psyco_kernel.prepare(); del _psyco_kernel"
#: The modules whose ``tqdm`` (and ``trange``) the package and the libraries it calls import.
TQDM_MODULES = ("tqdm", "tqdm.auto", "tqdm.autonotebook", "tqdm.notebook")


def terminal_stream():
    """The kernel's standard error as it was before ipykernel captured it into the notebook, if that is a terminal;
    otherwise None.  Outside ipykernel, the process's own standard error if it is a terminal."""
    fd = getattr(sys.stderr, "_original_stdstream_copy", None)
    if fd is None:
        stream = sys.__stderr__
        return stream if stream is not None and stream.isatty() else None
    if not os.isatty(fd):
        return None
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")


def terminal_tqdm(terminal):
    """A tqdm class that draws on ``terminal`` whatever ``file`` its caller asks for, and is off when ``terminal`` is
    None."""
    from tqdm.std import tqdm as std_tqdm

    class TerminalTqdm(std_tqdm):
        def __init__(self, iterable=None, *args, **kwargs):
            if len(args) >= 4:  # tqdm(iterable, desc, total, leave, file, ...): the caller's file is replaced
                args = args[:3] + args[4:]
            kwargs["file"] = terminal
            if terminal is None:
                kwargs["disable"] = True
            super().__init__(iterable, *args, **kwargs)

    TerminalTqdm.__name__ = TerminalTqdm.__qualname__ = "tqdm"
    return TerminalTqdm


def progress_bars_to_terminal(terminal=None, modules=TQDM_MODULES) -> type:
    """Replace ``tqdm`` and ``trange`` in ``modules`` with :func:`terminal_tqdm` on ``terminal`` (by default
    :func:`terminal_stream`).  Libraries imported afterwards (``transformers``, ``datasets``, TRL) build their bars on
    the replacement.  Returns the class."""
    import importlib

    bar = terminal_tqdm(terminal if terminal is not None else terminal_stream())

    def trange(*args, **kwargs):
        return bar(range(*args), **kwargs)

    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:  # tqdm.notebook needs IPython; a kernel always has it
            continue
        module.tqdm, module.trange = bar, trange
    return bar


def prepare() -> bool:
    """Run by :data:`KERNEL_EXEC_LINE` in a kernel ``psyco-book`` started: bind the kernel to ``psyco-book`` and send
    progress bars to the terminal.  Does nothing (returns False) in a kernel ``psyco-book`` did not start."""
    if not bind_kernel_to_runner():
        return False
    progress_bars_to_terminal()
    return True


__all__ = ["KERNEL_EXEC_LINE", "TQDM_MODULES", "prepare", "progress_bars_to_terminal", "terminal_stream",
           "terminal_tqdm"]
