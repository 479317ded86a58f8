"""A stopped run stops: ``psyco-book`` and the notebook kernels it starts end together.

Papermill's kernel runs in its own session, so a signal to ``psyco-book`` never reaches it, and a ``psyco-book``
killed outright would leave it running (and sending paid requests).  Three links close that gap:

* ``psyco-book`` follows its own parent (:func:`follow_parent`): when the shell or job runner that started it dies,
  it receives SIGTERM, unless it was started under ``nohup`` (SIGHUP ignored), which asks to outlive the terminal.
* On SIGINT, SIGTERM or SIGHUP, ``psyco-book`` sends SIGTERM to the kernel and, after a grace period, kills whatever
  is left of the kernel's process tree (:func:`end_processes`).
* The kernel binds itself to ``psyco-book`` when it starts (:func:`bind_kernel_to_runner`, run by
  :func:`psyco_book.kernel.prepare` from the kernel's ``exec_lines``): the death of ``psyco-book``, even by SIGKILL,
  sends the kernel SIGTERM (Linux ``prctl`` PR_SET_PDEATHSIG; a watchdog thread polling the parent's PID does the
  same elsewhere).  On SIGTERM the kernel
  interrupts the running cell as Ctrl-C would (the judge then cancels its requests; what completed is cached), waits
  up to :data:`KERNEL_GRACE_S` for the cell to end, kills its own child processes and exits.  It takes the place of
  ipykernel's own parent poller, which would exit at once and leave the kernel's children running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

#: Set by ``psyco-book`` for its kernels: the PID the kernel must outlive no longer than a grace period.
RUNNER_PID_ENV = "PSYCO_BOOK_PID"
#: How long an interrupted cell may take to end (the judge recording its cancelled requests) before the kernel exits.
KERNEL_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False where ``prctl`` is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(on_death, interval_s: float = 0.5) -> threading.Thread:
    """Call ``on_death()`` once, from a daemon thread, when this process's parent has died (it is re-parented)."""
    parent = os.getppid()
    stop = threading.Event()

    def watch():
        while not stop.wait(interval_s):
            if os.getppid() != parent:
                on_death()
                return

    thread = threading.Thread(target=watch, name="psyco-parent-watch", daemon=True)
    thread.start()
    return thread


def _signal_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def follow_parent() -> bool:
    """Make this process (``psyco-book``) receive SIGTERM when its parent dies; not under ``nohup``.

    Returns whether it now follows its parent.
    """
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        return False
    if not die_with_parent(signal.SIGTERM):
        watch_parent(_signal_self)
    return True


def end_processes(processes, grace_s: float) -> None:
    """SIGTERM ``processes`` (psutil processes), wait up to ``grace_s`` for them to exit, then SIGKILL the rest."""
    import psutil

    processes = list(processes)
    for proc in processes:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)


def descendants(pid: int | None = None) -> list:
    """Every live descendant of ``pid`` (this process by default), as psutil processes."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


# ---------------------------------------------------------------------- inside the kernel

class _KernelStop:
    """The kernel's SIGTERM handler: interrupt the running cell, let it end, kill the kernel's children, exit."""

    def __init__(self):
        self.cell_running = False
        self.cell_ended = threading.Event()
        self.stopping = False

    def pre_run_cell(self, *args):
        self.cell_running = True
        self.cell_ended.clear()

    def post_run_cell(self, *args):
        self.cell_running = False
        self.cell_ended.set()

    @staticmethod
    def end_kernel() -> None:
        end_processes(descendants(), grace_s=KERNEL_GRACE_S)
        os._exit(128 + signal.SIGTERM)

    def end_kernel_after_cell(self) -> None:
        self.cell_ended.wait(KERNEL_GRACE_S)
        self.end_kernel()

    def __call__(self, signum, frame):
        if self.stopping:
            return
        self.stopping = True
        if not self.cell_running:
            self.end_kernel()
        threading.Thread(target=self.end_kernel_after_cell, name="psyco-kernel-stop", daemon=True).start()
        raise KeyboardInterrupt(f"stopped: psyco-book ended the kernel (signal {signum})")


def _take_over_ipykernel_poller() -> None:
    """ipykernel polls its parent once a second and, when it is gone, exits at once (``os._exit``): the cell gets no
    chance to end and the kernel's children are left running.  Start-up lines run before that poller starts, so
    the lifeline can take its place."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:  # pragma: no cover - ipykernel is the kernel
        return
    if IPKernelApp.initialized():
        app = IPKernelApp.instance()
        if app.poller is not None and not app.poller.is_alive():
            app.poller = None


def bind_kernel_to_runner() -> bool:
    """In a kernel started by ``psyco-book``: end this kernel and its children when ``psyco-book`` stops or dies.

    Does nothing (returns False) in a kernel that ``psyco-book`` did not start (Colab, Jupyter, VS Code).
    """
    runner = int(os.environ.get(RUNNER_PID_ENV, "0") or 0)
    if not runner or threading.current_thread() is not threading.main_thread():
        return False
    _take_over_ipykernel_poller()
    stop = _KernelStop()
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.events.register("pre_run_cell", stop.pre_run_cell)
            shell.events.register("post_run_cell", stop.post_run_cell)
    except ImportError:  # pragma: no cover - IPython is the kernel
        pass
    signal.signal(signal.SIGTERM, stop)
    if os.getppid() != runner:  # psyco-book died before this line ran
        _signal_self()
        return True
    die_with_parent(signal.SIGTERM)
    watch_parent(_signal_self)
    return True


__all__ = ["KERNEL_GRACE_S", "RUNNER_PID_ENV", "bind_kernel_to_runner", "descendants",
           "die_with_parent", "end_processes", "follow_parent", "watch_parent"]
