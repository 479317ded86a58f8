"""The package's shape: no import cycle among the modules of ``psyco_utils``, and the learners' package never imports
the build and CI tools (``psyco_book``).

Imports are read from the source with ``ast``: module level and inside functions, absolute and relative
(``from . import x``, ``from ..judge import cache``), so an import deferred into a function to dodge a cycle at import
time still counts as the dependency it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent



def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of the package (packages by their ``__init__``)."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` statement reads from (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(path: Path, module: str, is_package: bool, modules: set[str] | frozenset[str] = frozenset()
                     ) -> set[str]:
    """Every module named by an import statement anywhere in ``path``.  ``from m import name`` names ``m.name`` when
    that is one of ``modules`` (a submodule) and ``m`` otherwise; with no ``modules`` given it names both."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                else:
                    found.add(source)
                    if not modules and alias.name != "*":
                        found.add(submodule)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = module_files(package_dir)
    graph = {}
    for name, path in modules.items():
        targets = imported_modules(path, name, path.name == "__init__.py", set(modules))
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm): each is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


# ---------------------------------------------------------------------------------------------- the real package

def test_psyco_utils_has_no_import_cycle():
    cycles = import_cycles(import_graph(ROOT / "psyco_utils"))
    assert not cycles, "import cycles among psyco_utils modules: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def test_psyco_utils_never_imports_the_build_tools():
    offenders = []
    for name, path in module_files(ROOT / "psyco_utils").items():
        imported = imported_modules(path, name, path.name == "__init__.py")
        offenders += [f"{path.relative_to(ROOT)} imports {m}" for m in sorted(imported)
                      if m == "psyco_book" or m.startswith("psyco_book.")]
    assert not offenders, "; ".join(offenders)


def test_the_build_tools_live_outside_psyco_utils():
    for tool in ("book", "lifeline", "sitecheck", "browsercheck"):
        assert (ROOT / "psyco_book" / f"{tool}.py").exists()
        assert not (ROOT / "psyco_utils" / f"{tool}.py").exists(), f"psyco_utils/{tool}.py is back"


# ---------------------------------------------------------------------------------------------- the checker itself

def test_a_cycle_through_a_relative_import_inside_a_function_is_found(tmp_path):
    package = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "",
        "pkg/b.py": "def late():\n    from .sub import c\n    return c\n",
        "pkg/sub/c.py": "def later():\n    from ..a import thing\n    return thing\n",
    })
    assert import_cycles(import_graph(package)) == [frozenset({"pkg.a", "pkg.b", "pkg.sub.c"})]


def test_absolute_imports_and_package_inits_count(tmp_path):
    package = _write_package(tmp_path, {
        "pkg/__init__.py": "from pkg.tools import helper\n",
        "pkg/tools.py": "import pkg\n",
        "pkg/free.py": "import os\nfrom pkg import tools\n",
    })
    graph = import_graph(package)
    assert graph["pkg.free"] == {"pkg.tools"}
    assert import_cycles(graph) == [frozenset({"pkg", "pkg.tools"})]


def test_a_package_without_cycles_reports_none(tmp_path):
    package = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import x\nfrom . import c\n",
        "pkg/b.py": "from .c import y\n",
        "pkg/c.py": "import json\n",
    })
    assert import_cycles(import_graph(package)) == []


@pytest.mark.parametrize("line", ["import psyco_book.book", "from psyco_book import sitecheck",
                                  "def f():\n    from psyco_book.lifeline import descendants\n"])
def test_an_import_of_the_build_tools_is_seen(tmp_path, line):
    package = _write_package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": line + "\n"})
    imported = imported_modules(package / "a.py", "pkg.a", False)
    assert any(m.startswith("psyco_book") for m in imported)


def test_every_module_of_the_package_declares_its_public_names():
    import importlib

    missing, unknown = [], []
    for name, path in module_files(ROOT / "psyco_utils").items():
        if path.name == "__init__.py" and name == "psyco_utils":
            continue  # the package's public names are its modules
        module = importlib.import_module(name)
        if not hasattr(module, "__all__"):
            missing.append(name)
            continue
        unknown += [f"{name}.{n}" for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"modules without __all__: {missing}"
    assert not unknown, f"names in __all__ that do not exist: {unknown}"
