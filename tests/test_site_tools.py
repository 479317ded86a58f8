"""The site check and the browser check's judgement, on small hand-written pages and measurements (no Chromium)."""

from __future__ import annotations

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
