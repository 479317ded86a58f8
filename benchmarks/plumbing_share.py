"""How much of each chapter's code is plumbing rather than "configure, call, show".

    .venv/bin/python benchmarks/plumbing_share.py [--rev GIT_REVISION]

Counting method.  Every top-level statement of every code cell is counted, except the Colab install cell and the
papermill parameters cell.  A statement is **configure, call or show** when it is one of:

* an import;
* an assignment of a literal or of names (``overrides = []``, ``cfg, run = chapter.cfg, chapter.run``);
* a call, bare or assigned, of the book's package (``psyco_utils``), of TRL or transformers, or of a method or
  attribute of a value such a call returned, whose arguments hold no f-string, comprehension, lambda, dict or list
  display with more than three items, or nested call of anything else;
* a bare name or attribute (Jupyter shows it).

Everything else is **plumbing**: loops, conditionals, f-strings, data wrangling with pandas, hand-built figures,
dictionaries assembled inline.  The share printed is plumbing statements over all counted statements.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_MODULES = ("psyco_utils", "trl", "transformers")


def _cells(source: str) -> list[tuple[str, str]]:
    """(header, body) of each jupytext percent cell."""
    cells, header, body = [], None, []
    for line in source.splitlines():
        if line.startswith("# %%"):
            if header is not None:
                cells.append((header, "\n".join(body)))
            header, body = line, []
        elif header is not None:
            body.append(line)
    if header is not None:
        cells.append((header, "\n".join(body)))
    return cells


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


class _Counter:
    def __init__(self):
        self.api_names: set[str] = set()  # names bound to the package, TRL or transformers, or to what they returned

    def _simple_argument(self, node: ast.AST) -> bool:
        for sub in ast.walk(node):
            if isinstance(sub, (ast.JoinedStr, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp, ast.Lambda,
                                ast.IfExp)):
                return False
            if isinstance(sub, (ast.Dict, ast.List, ast.Tuple, ast.Set)) and len(getattr(sub, "elts", None)
                                                                                 or getattr(sub, "keys", [])) > 3:
                return False
            if isinstance(sub, ast.Call) and sub is not node and _root_name(sub.func) not in self.api_names:
                return False
        return True

    def _api_call(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Call) or _root_name(node.func) not in self.api_names:
            return False
        arguments = [*node.args, *(k.value for k in node.keywords)]
        inner = node.func
        while isinstance(inner, ast.Attribute):  # a chain like display.table(x).set_caption(...)
            inner = inner.value
            if isinstance(inner, ast.Call):
                if not self._api_call(inner):
                    return False
                break
        return all(self._simple_argument(a) for a in arguments)

    def _bind(self, targets: list[ast.AST]) -> None:
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    self.api_names.add(sub.id)

    def is_plumbing(self, stmt: ast.stmt) -> bool:
        if isinstance(stmt, ast.Import):
            self.api_names.update((a.asname or a.name).split(".")[0] for a in stmt.names
                                  if a.name.split(".")[0] in API_MODULES)
            return False
        if isinstance(stmt, ast.ImportFrom):
            if (stmt.module or "").split(".")[0] in API_MODULES:
                self.api_names.update(a.asname or a.name for a in stmt.names)
            return False
        if isinstance(stmt, ast.Expr):
            value = stmt.value
            return not (isinstance(value, (ast.Name, ast.Attribute)) or self._api_call(value))
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            value, targets = stmt.value, (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
            literal = value is not None and all(isinstance(n, (ast.Constant, ast.Name, ast.Attribute, ast.Tuple,
                                                               ast.List, ast.Load, ast.Store))
                                                for n in ast.walk(value)) and self._simple_argument(value)
            if literal or self._api_call(value):
                if value is not None and not literal:
                    self._bind(targets)
                elif value is not None and _root_name(value) in self.api_names:
                    self._bind(targets)
                return False
        return True


def chapter_share(source: str) -> tuple[int, int]:
    """(plumbing statements, all counted statements) of one chapter's percent-format source."""
    counter, plumbing, total = _Counter(), 0, 0
    for header, body in _cells(source):
        if "[markdown]" in header or "parameters" in header or "google.colab" in body:
            continue
        for stmt in ast.parse(body).body:
            total += 1
            plumbing += counter.is_plumbing(stmt)
    return plumbing, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="measure the chapters as they were at this git revision")
    args = parser.parse_args()
    paths = sorted((ROOT / "notebooks").glob("0*.py"))
    print(f"{'chapter':32} {'plumbing':>9} {'statements':>11} {'share':>6}")
    for path in paths:
        rel = path.relative_to(ROOT).as_posix()
        source = (subprocess.run(["git", "show", f"{args.rev}:{rel}"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout if args.rev else path.read_text())
        plumbing, total = chapter_share(source)
        print(f"{path.stem:32} {plumbing:9d} {total:11d} {plumbing / max(total, 1):6.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
