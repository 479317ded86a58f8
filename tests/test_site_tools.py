"""The site check and the browser check's judgement, on small hand-written pages and measurements; then the browser
check and the page styles in headless Chromium on a two-page site (skipped where Debian's chromium and chromium-driver
are not installed)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from psyco_book import browsercheck, sitecheck


def _site(tmp_path, body: str, name: str = "chapter.html"):
    (tmp_path / "index.html").write_text("<html><body><p>Welcome.</p></body></html>")
    (tmp_path / name).write_text(f"<html><head><style>a {{}}</style></head><body>{body}</body></html>")
    return tmp_path


CLEAN = ('<p>Artifacts go to <code>runs/tiny/</code>; see https://example.org/home/work/ and '
         '<a href="https://huggingface.co/tmp/x">a link</a>, a fraction 12/20, a share 45%, "I/O at 0x10".</p>')


def test_a_clean_site_passes(tmp_path):
    assert sitecheck.check_site(_site(tmp_path, CLEAN), folders=["/srv/ci/runs"]) == []


@pytest.mark.parametrize("text, kind", [
    ("artifacts in /work/runs_base/tiny", "absolute machine path"),
    ("cached under /home/alex/.cache/psyco", "absolute machine path"),
    ("written to /tmp/tmpab12/pool.parquet", "absolute machine path"),
    ("read from '/root/models/qwen'", "absolute machine path"),
    ("(/Users/sam/psyco/runs)", "absolute machine path"),
    ("saved in C:\\Users\\sam\\runs", "absolute machine path"),
    ("tiny-policy-t0.7: 50%|█████     | 1/2 [00:04<00:04,  4.63s/it]", "progress bar"),
    ("Map: 100%|##########| 12/12 [00:00<00:00, 310.2 examples/s]", "progress bar"),
    ("DatasetDict({ train: Dataset({ features: ['prompt'], num_rows: 10 }) })", "object dump"),
    ("Dataset({ features: ['prompt'], num_rows: 10 })", "object dump"),
    ("&lt;psyco_utils.reward.RewardResult object at 0x7f3a2c1b9d30&gt;", "object dump"),
    ("{'eval_loss': '0.5845', 'eval_runtime': '0.6714', 'epoch': 0}", "object dump"),
    ("{'loss': '0.6931', 'grad_norm': '1.2', 'learning_rate': '5e-07', 'epoch': 0.1}", "object dump"),
])
def test_each_kind_of_noise_fails_the_check_naming_page_and_snippet(tmp_path, text, kind):
    problems = sitecheck.check_site(_site(tmp_path, f"<div class='output'><pre>before {text} after</pre></div>"),
                                    folders=[])
    assert len(problems) == 1, problems
    page, problem = problems[0].split(": ", 1)
    assert page == "chapter.html" and problem.startswith(kind)
    shown = text.replace("&lt;", "<").replace("&gt;", ">")
    assert f"before {shown.split()[0]}" in problem


def test_the_runs_folder_of_this_machine_fails_wherever_it_is(tmp_path):
    site = _site(tmp_path, "<p>artifacts in /srv/ci/runs/tiny, and /srv/ci/runs-old is another folder</p>")
    problems = sitecheck.check_site(site, folders=["/srv/ci/runs"])
    assert len(problems) == 1
    assert problems[0].startswith("chapter.html: names this machine's folder /srv/ci/runs: '")
    assert "artifacts in /srv/ci/runs/tiny" in problems[0]
    assert sitecheck.check_site(_site(tmp_path, "<p>see https://x.org/srv/ci/runs and /srv/ci/runs-old</p>"),
                                folders=["/srv/ci/runs"]) == []


def test_the_default_folders_are_the_runs_folder_and_the_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert set(sitecheck.machine_folders()) == {str((tmp_path / "elsewhere").resolve()), str(sitecheck.REPO_ROOT)}


def test_a_progress_widget_fails_the_check(tmp_path):
    widget = '<script type="application/vnd.jupyter.widget-view+json">{"model_id": "abc"}</script>'
    problems = sitecheck.check_site(_site(tmp_path, widget), folders=[])
    assert problems == ["chapter.html: progress bar: a notebook widget output (tqdm.notebook or ipywidgets)"]


def test_the_command_line_exits_non_zero_on_a_machine_path(tmp_path, capsys):
    site = _site(tmp_path, "<p>artifacts in /work/runs/tiny</p>")
    assert sitecheck.main([str(site)]) == 1
    assert "chapter.html: absolute machine path" in capsys.readouterr().err
    (site / "chapter.html").write_text("<html><body><p>artifacts in runs/tiny</p></body></html>")
    assert sitecheck.main([str(site)]) == 0


# ------------------------------------------------------------------------------------- the browser check's judgement

def _measured(**changes) -> dict:
    page = {"title": "Reward model", "heading": "3. The reward model", "viewport": 1280, "page_width": 1280,
            "column": 700.0, "tables": [{"width": 640.0, "label": "metric this run paper"}],
            "images": [{"src": "http://127.0.0.1:8000/_images/abc.png", "complete": True, "natural": 680,
                        "shown": 680.0, "in_article": True},
                       {"src": "http://127.0.0.1:8000/_static/logo.png", "complete": True, "natural": 900,
                        "shown": 200.0, "in_article": False}],
            "long_lines": []}
    page.update(changes)
    return page


def test_a_page_that_reads_well_has_no_problems():
    assert browsercheck.page_problems("executed/03_reward_model", _measured()) == []


@pytest.mark.parametrize("changes, expected", [
    ({"title": ""}, "no title or no h1 heading"),
    ({"page_width": 1410}, "scrolls sideways: 1410 px of content in a 1280 px window"),
    ({"tables": [{"width": 905.0, "label": "metric this run paper", "section": "Beside the paper"}]},
     "table 1 in 'Beside the paper' ('metric this run paper') is 905 px wide in a 700 px column"),
    ({"images": [{"src": "http://h/_images/wide.png", "complete": True, "natural": 1309, "shown": 700.0,
                  "in_article": True, "section": "Training curves"}]},
     "figure 1 in 'Training curves' (wide.png) shown at 700 px of its 1309 px (53%"),
    ({"images": [{"src": "http://h/_images/gone.png", "complete": True, "natural": 0, "shown": 0.0,
                  "in_article": True}]}, "image did not load: gone.png"),
    ({"long_lines": [{"excess": 312.0, "label": "Finding: the reward model beats the length baseline by"}]},
     "a printed line runs 312 px past its box: 'Finding: the reward model"),
    ({"tables": [{"width": 640.0, "label": "a"}, {"width": 701.0, "label": "b"}, {"width": 702.0, "label": "c"}]},
     "table 3 ('c') is 702 px wide"),
])
def test_each_layout_problem_is_named_with_its_page(changes, expected):
    problems = browsercheck.page_problems("executed/03_reward_model", _measured(**changes))
    assert len(problems) == 1 and problems[0].startswith(f"executed/03_reward_model: {expected}"), problems


def test_a_figure_at_ninety_percent_passes_and_a_scalable_drawing_may_shrink():
    images = [{"src": "http://h/_images/a.png", "complete": True, "natural": 760, "shown": 684.0, "in_article": True},
              {"src": "http://h/_images/pipeline.svg", "complete": True, "natural": 1400, "shown": 700.0,
               "in_article": True}]
    assert browsercheck.page_problems("p", _measured(images=images)) == []


def test_the_pages_are_visited_in_the_order_of_the_table_of_contents(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n"
                   "      - file: executed/01_a\n        sections:\n          - file: executed/01b\n"
                   "      - file: book/z\n")
    assert browsercheck.toc_pages(toc) == ["book/intro", "executed/01_a", "executed/01b", "book/z"]


# ------------------------------------------------------------------------------- in headless Chromium (when installed)

ROOT = Path(__file__).resolve().parent.parent
needs_chromium = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                    reason="needs Debian's chromium and chromium-driver")
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="../_static/psyco.css"><script src="../_static/psyco.js"></script></head>
<body style="margin: 0"><main><article class="bd-article" style="width: 700px; padding: 0 20px">
<section><h1>{title}</h1>{body}</section></article>{next}</main></body></html>"""
NUMBERS = """<div class="cell_output"><table id="numbers"><thead><tr><th></th><th></th><th>this run</th><th>paper</th>
<th>note</th></tr></thead><tbody>
<tr><th rowspan="2">no constraint</th><th>DPO</th><td>79.0</td><td>58.5</td><td>ahead</td></tr>
<tr><th>DPO-Iter</th><td>72.6</td><td>-</td><td>3 rounds</td></tr></tbody></table></div>"""


def _png(path: Path, width: int) -> None:
    from PIL import Image

    Image.new("RGB", (width, 200), "white").save(path)


def _two_page_site(tmp_path: Path) -> tuple[Path, Path]:
    site = tmp_path / "html"
    for folder in ("_static", "book", "executed"):
        (site / folder).mkdir(parents=True)
    for name in ("psyco.css", "psyco.js"):
        shutil.copy(ROOT / "book" / "_static" / name, site / "_static" / name)
    _png(site / "_static" / "fits.png", 660)
    _png(site / "_static" / "wide.png", 1300)
    (site / "book" / "intro.html").write_text(PAGE.format(
        title="Intro", body=NUMBERS + '<img src="../_static/fits.png">',
        next='<a class="right-next" href="../executed/02_two.html">next</a>'))
    wide_table = '<table style="width: 1200px"><tr><td>a table too wide for its column</td></tr></table>'
    (site / "executed" / "02_two.html").write_text(PAGE.format(
        title="Two", body=wide_table + '<img src="../_static/wide.png" style="max-width: 100%">', next=""))
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: executed/02_two\n")
    return site, toc


@needs_chromium
def test_the_browser_check_finds_a_wide_table_and_a_shrunk_figure_and_saves_full_pages(tmp_path):
    site, toc = _two_page_site(tmp_path)
    problems = browsercheck.check_in_browser(site, tmp_path / "shots", toc)
    assert len(problems) == 2, problems
    assert problems[0].startswith("executed/02_two: table 1 in 'Two' ('a table too wide for its column') is 1200 px")
    assert problems[1].startswith("executed/02_two: figure 1 in 'Two' (wide.png) shown at 700 px of its 1300 px")
    from PIL import Image

    shots = sorted((tmp_path / "shots").glob("*.png"))
    assert [p.name for p in shots] == ["00_book_intro.png", "01_executed_02_two.png"]
    assert all(Image.open(p).size[0] == browsercheck.VIEWPORT[0] for p in shots)


@needs_chromium
def test_the_page_styles_right_align_whole_columns_of_numbers(tmp_path):
    site, _ = _two_page_site(tmp_path)
    server, base = browsercheck._serve(site)
    with tempfile.TemporaryDirectory() as profile:
        driver = browsercheck._driver(profile)
        try:
            driver.get(f"{base}/book/intro.html")
            browsercheck._loaded(driver)
            cells = driver.execute_script(
                "return Array.from(document.querySelectorAll('#numbers td, #numbers thead th')).map(c => "
                "[c.textContent, c.classList.contains('psyco-num'), getComputedStyle(c).textAlign])")
        finally:
            driver.quit()
            server.shutdown()
    aligned = {text: (marked, align) for text, marked, align in cells if text}
    for number in ("this run", "79.0", "72.6", "paper", "58.5", "-"):
        assert aligned[number] == (True, "right"), number
    for text in ("note", "ahead", "3 rounds"):
        assert aligned[text] == (False, "left"), text
