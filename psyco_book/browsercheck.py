"""Browser test of the rendered site (CI): headless Chromium reads every page of the table of contents as a student
would, at a 1,280 x 800 viewport.

``python -m psyco_book.browsercheck _build/html [--screenshots DIR]`` serves the site from a loopback HTTP server,
opens each page listed in ``_toc.yml`` in Debian's headless Chromium (through chromedriver and Selenium), measures
it (:data:`MEASURE_PAGE`) and judges the measurements (:func:`page_problems`):

* the page has a title and a heading, and its "next" link leads to the next page of the table of contents;
* the page does not scroll sideways;
* every table fits the content column;
* every image loaded, and every raster figure is shown at 90% of its natural width or more (not shrunk until its
  axis text is unreadable);
* no printed output line runs past the column (it would be cut off, or scroll inside its box).

A full-page screenshot of each page is saved.  Exits non-zero naming the page and the problem.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]
#: The screen a student reads the book on.
VIEWPORT = (1280, 800)
#: A raster figure shown at less than this share of its natural width is too small to read.
MIN_FIGURE_SCALE = 0.9
#: Sub-pixel rounding allowed in width comparisons.
TOLERANCE_PX = 1.5


def toc_pages(toc_path: Path = REPO_ROOT / "_toc.yml") -> list[str]:
    """The pages of the table of contents in reading order, as paths relative to the site root without suffix."""
    toc = yaml.safe_load(toc_path.read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return pages


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep CI output readable
        pass


def _serve(root: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


MEASURE_PAGE = """
const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const style = getComputedStyle(article);
const column = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
const h1 = document.querySelector('article h1') || document.querySelector('main h1');
const label = (el) => (el.innerText || '').replace(/\\s+/g, ' ').trim().slice(0, 60);
const section = (el) => {
  const s = el.closest('section');
  const h = s && s.querySelector('h1, h2, h3, h4');
  return h ? h.textContent.replace(/#\\s*$/, '').trim().slice(0, 60) : '';
};
const longestLine = (el) => (el.innerText || '').split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '');
return {
  title: document.title.trim(),
  heading: h1 ? h1.textContent.trim() : '',
  viewport: document.documentElement.clientWidth,
  page_width: document.documentElement.scrollWidth,
  column: column,
  tables: Array.from(article.querySelectorAll('table')).map(t => ({width: t.getBoundingClientRect().width,
                                                                   label: label(t), section: section(t)})),
  images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, complete: i.complete,
                                                 natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
                                                 in_article: article.contains(i), section: section(i)})),
  long_lines: Array.from(article.querySelectorAll('.cell_output pre, .output pre'))
    .filter(p => p.scrollWidth > p.clientWidth + 1)
    .map(p => ({excess: p.scrollWidth - p.clientWidth, label: longestLine(p).slice(0, 60), section: section(p)})),
};
"""


def _is_raster(src: str) -> bool:
    path = src.split("?")[0].lower()
    return not (path.endswith(".svg") or path.startswith("data:image/svg"))


def _where(item: dict) -> str:
    return f" in '{item['section']}'" if item.get("section") else ""


def page_problems(page: str, m: dict) -> list[str]:
    """Judge one page's measurements (:data:`MEASURE_PAGE`): every problem, starting with the page."""
    problems = []
    if not m["title"] or not m["heading"]:
        problems.append("no title or no h1 heading")
    if m["page_width"] > m["viewport"] + TOLERANCE_PX:
        problems.append(f"scrolls sideways: {m['page_width']:.0f} px of content in a {m['viewport']:.0f} px window")
    for i, table in enumerate(m["tables"], 1):
        if table["width"] > m["column"] + TOLERANCE_PX:
            problems.append(f"table {i}{_where(table)} ('{table['label']}') is {table['width']:.0f} px wide in a "
                            f"{m['column']:.0f} px column")
    figures = [image for image in m["images"] if image["in_article"]]
    for image in m["images"]:
        name = image["src"].rsplit("/", 1)[-1][:24]
        if not image["complete"] or image["natural"] == 0:
            problems.append(f"image did not load: {name}")
        elif image["in_article"] and _is_raster(image["src"]) \
                and image["shown"] < MIN_FIGURE_SCALE * image["natural"] - TOLERANCE_PX:
            problems.append(f"figure {figures.index(image) + 1}{_where(image)} ({name}) shown at {image['shown']:.0f}"
                            f" px of its {image['natural']} px ({image['shown'] / image['natural']:.0%}; at least "
                            f"{MIN_FIGURE_SCALE:.0%} is readable)")
    for line in m["long_lines"]:
        problems.append(f"a printed line{_where(line)} runs {line['excess']:.0f} px past its box: '{line['label']}'")
    return [f"{page}: {p}" for p in problems]


def _driver(user_data_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary:
        options.binary_location = binary
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    driver_path = shutil.which("chromedriver")
    service = Service(executable_path=driver_path) if driver_path else Service()
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    width, height = VIEWPORT
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return driver


def _loaded(driver) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))


def save_full_page(driver, path: Path) -> None:
    """A screenshot of the whole page as laid out at the viewport's width: the viewport is made as tall as the page
    for the capture (Chrome's capture beyond the viewport lays the page out anew and collapses the sidebar), then
    set back."""
    import base64

    width, height = VIEWPORT
    full = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    metrics = {"width": width, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": max(height, full)})
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
    path.write_bytes(base64.b64decode(shot["data"]))


def _follow_next(driver, page: str, expected: str) -> list[str]:
    from selenium.webdriver.common.by import By

    nxt = driver.find_elements(By.CSS_SELECTOR, "a.right-next")
    if not nxt:
        return [f"{page}: no 'next' navigation link"]
    driver.get(nxt[0].get_attribute("href"))
    _loaded(driver)
    if not driver.current_url.split("#")[0].endswith(f"{expected}.html"):
        return [f"{page}: 'next' led to {driver.current_url}, expected {expected}.html"]
    return []


def check_in_browser(site: Path, screenshots: Path, toc: Path = REPO_ROOT / "_toc.yml") -> list[str]:
    """Visit every page of the table of contents; every problem found, one line each."""
    problems: list[str] = []
    pages = toc_pages(toc)
    screenshots.mkdir(parents=True, exist_ok=True)
    server, base = _serve(site)
    with tempfile.TemporaryDirectory() as profile_dir:
        driver = _driver(profile_dir)
        try:
            for i, page in enumerate(pages):
                driver.get(f"{base}/{page}.html")
                _loaded(driver)
                measured = driver.execute_script(MEASURE_PAGE)
                found = page_problems(page, measured)
                problems += found
                save_full_page(driver, screenshots / f"{i:02d}_{page.replace('/', '_')}.png")
                print(f"browsercheck: {page}: column {measured['column']:.0f} px, {len(measured['tables'])} table(s), "
                      f"{len(measured['images'])} image(s), {len(found)} problem(s)", flush=True)
                if i + 1 < len(pages):
                    problems += _follow_next(driver, page, pages[i + 1])
        finally:
            driver.quit()
            server.shutdown()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m psyco_book.browsercheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, nargs="?", default=REPO_ROOT / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=REPO_ROOT / "_build" / "screenshots")
    parser.add_argument("--toc", type=Path, default=REPO_ROOT / "_toc.yml")
    args = parser.parse_args(argv)
    problems = check_in_browser(args.site, args.screenshots, args.toc)
    for problem in problems:
        print(f"browsercheck: {problem}", file=sys.stderr)
    print(f"browsercheck: {len(toc_pages(args.toc))} pages visited at {VIEWPORT[0]} x {VIEWPORT[1]}, "
          f"{len(problems)} problem(s); screenshots in {args.screenshots}")
    return 1 if problems else 0


__all__ = ["MEASURE_PAGE", "MIN_FIGURE_SCALE", "VIEWPORT", "check_in_browser", "main", "page_problems",
           "save_full_page", "toc_pages"]

if __name__ == "__main__":
    sys.exit(main())
