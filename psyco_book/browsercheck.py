"""Browser test of the rendered site (CI): headless Chromium visits every page of the table of contents.

``python -m psyco_book.browsercheck _build/html [--screenshots DIR]`` serves the site from a loopback HTTP server,
opens each page listed in ``_toc.yml`` in Debian's headless Chromium (through chromedriver and Selenium), and checks
that the page has its title, that every image loaded (``naturalWidth > 0``), and that the "next" link leads to the
next page of the table of contents.  A screenshot of each page is saved.  Exits non-zero naming page and problem.
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
                  "--disable-dev-shm-usage", "--window-size=1280,900"]


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
    return driver


def check_in_browser(site: Path, screenshots: Path, toc: Path = REPO_ROOT / "_toc.yml") -> list[str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    problems: list[str] = []
    pages = toc_pages(toc)
    screenshots.mkdir(parents=True, exist_ok=True)
    server, base = _serve(site)
    with tempfile.TemporaryDirectory() as profile_dir:
        driver = _driver(profile_dir)
        try:
            for i, page in enumerate(pages):
                url = f"{base}/{page}.html"
                driver.get(url)
                WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
                title = driver.title.strip()
                heading = driver.execute_script(
                    "const h = document.querySelector('article h1') || document.querySelector('main h1');"
                    "return h ? h.textContent.trim() : ''")
                if not title or not heading:
                    problems.append(f"{page}: no title or no h1 heading")
                images = driver.execute_script(
                    "return Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth])")
                broken = [src for src, complete, width in images if not complete or width == 0]
                for src in broken:
                    problems.append(f"{page}: image did not load: {src}")
                driver.save_screenshot(str(screenshots / f"{i:02d}_{page.replace('/', '_')}.png"))
                print(f"browsercheck: {page}: title {title!r}, {len(images)} image(s), {len(broken)} broken")
                if i + 1 < len(pages):
                    nxt = driver.find_elements(By.CSS_SELECTOR, "a.right-next")
                    if not nxt:
                        problems.append(f"{page}: no 'next' navigation link")
                        continue
                    nxt[0].click()
                    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
                    if not driver.current_url.split("#")[0].endswith(f"{pages[i + 1]}.html"):
                        problems.append(f"{page}: 'next' led to {driver.current_url}, expected {pages[i + 1]}.html")
        finally:
            driver.quit()
            server.shutdown()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, nargs="?", default=REPO_ROOT / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=REPO_ROOT / "_build" / "screenshots")
    parser.add_argument("--toc", type=Path, default=REPO_ROOT / "_toc.yml")
    args = parser.parse_args(argv)
    problems = check_in_browser(args.site, args.screenshots, args.toc)
    for p in problems:
        print(f"browsercheck: {p}", file=sys.stderr)
    print(f"browsercheck: {len(toc_pages(args.toc))} pages visited, {len(problems)} problem(s); screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
