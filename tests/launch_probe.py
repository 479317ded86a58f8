"""Run ``python -m psyco_utils.launch`` under a launcher and record, per process, every change it makes to files
below a watched folder (Python's audit hooks: opens for writing, renames, removals, new folders).  Used by
tests/test_launch.py to show that only the main process writes the trained artifacts.

    torchrun --nproc_per_node 2 tests/launch_probe.py WATCHED OUT_DIR -- STAGE ... --profile P --set ...

Each process writes ``OUT_DIR/rank<r>.json``: the paths (relative to WATCHED) it changed, with the event.
Files written by native code (safetensors' weights) are not seen; the configs, tokenizers and records beside them
are.
"""

import json
import os
import sys
from pathlib import Path

WRITE_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.truncate"}


def main() -> int:
    watched, out_dir = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    argv = sys.argv[sys.argv.index("--") + 1:]
    changed: list[tuple[str, str]] = []

    def inside(path) -> str | None:
        try:
            resolved = Path(os.fsdecode(path)).resolve()
        except (TypeError, ValueError):
            return None
        return resolved.relative_to(watched).as_posix() if resolved.is_relative_to(watched) else None

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            where = inside(args[0]) if writing else None
        elif event in WRITE_EVENTS and args:
            where = inside(args[0])
        else:
            return
        if where is not None:
            changed.append((event, where))

    sys.addaudithook(hook)
    from psyco_utils import launch

    code = launch.main(argv)
    out_dir.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    (out_dir / f"rank{rank}.json").write_text(json.dumps(sorted(set(changed))))
    return code


if __name__ == "__main__":
    sys.exit(main())
