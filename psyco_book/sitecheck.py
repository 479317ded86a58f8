"""Checks of the rendered site (CI): what a reader must never meet on a page.

* error outputs and tracebacks;
* secrets (API keys, bearer tokens);
* unscrubbed personal data;
* absolute machine paths (``/work/``, ``/home/``, ``/tmp/``, ``/root/``, ``/Users/``, ``C:\\``, and the runs folder
  and repository of the machine that built the book);
* progress bars (tqdm's text bars, or a notebook progress widget);
* object dumps (``DatasetDict({``, ``<... object at 0x...>``, a trainer's printed log line);
* broken links and images.

``python -m psyco_book.sitecheck _build/html`` exits non-zero and names the page, the problem and a snippet of the
text around it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

from psyco_utils.data import _PII_PATTERNS

SECRET_PATTERNS = {
    "OpenAI-style API key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"),
    "bearer token": re.compile(r"Bearer\s+[A-Za-z0-9._-]{20,}"),
    "API key assignment": re.compile(r"(?:OPENAI_API_KEY|api_key)\s*[=:]\s*['\"]?[A-Za-z0-9_-]{16,}"),
}
PII_KINDS = ("EMAIL", "PHONE", "ADDRESS", "ID_NUMBER")
#: A path that starts at the root of a machine's disk, anywhere in the text except inside a URL or a longer path.
MACHINE_PATH = re.compile(r"(?<![\w.:/~-])(?:/(?:work|home|tmp|root|Users)/|[A-Z]:\\)")
#: tqdm's text bar (``50%|█████     | 1/2``) or its timing block (``[00:04<00:04,  4.63s/it]``).
PROGRESS_BAR = re.compile(r"\d{1,3}%\|[^|\n]{0,60}\|\s*\d+/\d+"
                          r"|\[\d+:\d\d(?::\d\d)?<[\d:?]+,\s*[\d.?]+\s*(?:it/s|s/it)\]")
#: ``DatasetDict({``, ``<... object at 0x...>``, or a log line that a transformers trainer printed (``{'eval_loss': ...``).
OBJECT_DUMP = re.compile(r"\b(?:Iterable)?Dataset(?:Dict)?\(\{|<[\w.]+ object at 0x[0-9a-fA-F]+>"
                         r"|\{'(?:eval_|train_)?(?:loss|runtime|grad_norm|learning_rate)'\s*:")
#: How notebook progress widgets (tqdm.notebook, ipywidgets) reach a page.
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SNIPPET_CHARS = 40
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static"}
REPO_ROOT = Path(__file__).resolve().parent.parent


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.error_outputs = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag in ("script", "style"):
            self._skip += 1
        if "traceback" in classes or "output_error" in classes or ("output" in classes and "error" in classes):
            self.error_outputs += 1
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _local_target(page: Path, ref: str) -> Path | None:
    parsed = urlparse(ref)
    if parsed.scheme or parsed.netloc or ref.startswith(("#", "mailto:", "javascript:")):
        return None
    path = unquote(parsed.path)
    if not path:
        return None
    return (page.parent / path).resolve()


def snippet(text: str, start: int, end: int) -> str:
    """The text around ``text[start:end]``, on one line, for a problem report."""
    before = text[max(0, start - SNIPPET_CHARS):start]
    after = text[end:end + SNIPPET_CHARS]
    return " ".join(f"{before}{text[start:end]}{after}".split())


def machine_folders() -> list[str]:
    """This machine's runs folder and repository, which no page may name (besides the usual roots of a disk)."""
    runs = os.environ.get("PSYCO_RUNS_DIR") or str(REPO_ROOT / "runs")
    folders = {str(Path(runs).resolve()), str(REPO_ROOT)}
    return sorted((f for f in folders if len(f) > 1), key=len, reverse=True)


def text_problems(text: str, folders: list[str] = ()) -> list[str]:
    """Machine paths, progress bars and object dumps in a page's text, each with a snippet around it."""
    problems = []
    for kind, pattern in (("absolute machine path", MACHINE_PATH), ("progress bar", PROGRESS_BAR),
                          ("object dump", OBJECT_DUMP)):
        match = pattern.search(text)
        if match:
            problems.append(f"{kind}: '{snippet(text, match.start(), match.end())}'")
    for folder in folders:
        match = re.search(rf"(?<![\w.:/~-]){re.escape(folder)}(?![\w.-])", text)
        if match:
            problems.append(f"names this machine's folder {folder}: '{snippet(text, match.start(), match.end())}'")
            break
    return problems


def _pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html") if not (set(p.relative_to(root).parts) & SKIP_DIRS))


def page_problems(page: Path, root: Path, folders: list[str]) -> list[str]:
    """Every problem of one HTML page, without its name."""
    html = page.read_text(encoding="utf-8", errors="replace")
    parser = _Page()
    parser.feed(html)
    text = " ".join(parser.text)
    problems = []
    if parser.error_outputs or "Traceback (most recent call last)" in text:
        problems.append("contains an error output or traceback")
    problems += [f"contains what looks like a secret ({name})" for name, pattern in SECRET_PATTERNS.items()
                 if pattern.search(html)]
    for kind, pattern in _PII_PATTERNS:
        match = pattern.search(text) if kind in PII_KINDS else None
        if match:
            problems.append(f"unscrubbed personal data ({kind}): {match.group(0)[:3]}...")
    problems += text_problems(text, folders)
    if WIDGET_MIME in html:
        problems.append("progress bar: a notebook widget output (tqdm.notebook or ipywidgets)")
    for ref in parser.links + parser.images:
        target = _local_target(page, ref)
        if target is not None and not target.exists():
            problems.append(f"broken {'image' if ref in parser.images else 'link'} {ref}")
    return problems


def check_site(root: str | Path, folders: list[str] | None = None) -> list[str]:
    """Every problem found in the HTML pages under ``root``, one line each, starting with the page.  ``folders``:
    absolute folders no page may name (by default this machine's runs folder and repository)."""
    root = Path(root)
    pages = _pages(root)
    if not pages:
        return [f"{root}: no HTML pages"]
    folders = machine_folders() if folders is None else folders
    return [f"{page.relative_to(root)}: {problem}" for page in pages for problem in page_problems(page, root, folders)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m psyco_book.sitecheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, nargs="?", default=REPO_ROOT / "_build" / "html")
    parser.add_argument("--forbid", action="append", default=[], metavar="FOLDER",
                        help="another absolute folder no page may name (repeatable)")
    args = parser.parse_args(argv)
    problems = check_site(args.site, machine_folders() + [str(Path(f).resolve()) for f in args.forbid])
    for problem in problems:
        print(f"sitecheck: {problem}", file=sys.stderr)
    print(f"sitecheck: {len(_pages(args.site))} pages checked, {len(problems)} problem(s)")
    return 1 if problems else 0


__all__ = ["MACHINE_PATH", "OBJECT_DUMP", "PROGRESS_BAR", "SECRET_PATTERNS", "check_site", "machine_folders", "main",
           "page_problems", "snippet", "text_problems"]

if __name__ == "__main__":
    sys.exit(main())
