"""Checks of the rendered site (CI): no error outputs, no secrets, no unscrubbed personal data, no broken links.

``python -m psyco_book.sitecheck _build/html`` exits non-zero and names the page and the problem.
"""

from __future__ import annotations

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
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static"}


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


def check_site(root: str | Path) -> list[str]:
    """Every problem found in the HTML pages under ``root``, one line each."""
    root = Path(root)
    problems = []
    pages = [p for p in root.rglob("*.html") if not (set(p.relative_to(root).parts) & SKIP_DIRS)]
    if not pages:
        return [f"{root}: no HTML pages"]
    pii = [(kind, pattern) for kind, pattern in _PII_PATTERNS if kind in PII_KINDS]
    for page in sorted(pages):
        rel = page.relative_to(root)
        html = page.read_text(encoding="utf-8", errors="replace")
        parser = _Page()
        parser.feed(html)
        text = " ".join(parser.text)
        if parser.error_outputs or "Traceback (most recent call last)" in text:
            problems.append(f"{rel}: contains an error output or traceback")
        for name, pattern in SECRET_PATTERNS.items():
            if pattern.search(html):
                problems.append(f"{rel}: contains what looks like a secret ({name})")
        for kind, pattern in pii:
            match = pattern.search(text)
            if match:
                problems.append(f"{rel}: unscrubbed personal data ({kind}): {match.group(0)[:3]}...")
        for ref in parser.links + parser.images:
            target = _local_target(page, ref)
            if target is not None and not target.exists():
                kind = "image" if ref in parser.images else "link"
                problems.append(f"{rel}: broken {kind} {ref}")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "_build/html")
    problems = check_site(root)
    for p in problems:
        print(f"sitecheck: {p}", file=sys.stderr)
    pages = len([p for p in root.rglob('*.html') if not (set(p.relative_to(root).parts) & SKIP_DIRS)])
    print(f"sitecheck: {pages} pages checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
