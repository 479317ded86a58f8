"""What every page shares: styled tables, Markdown that shows data literally, examples that keep their lines."""

import markdown_it
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from psyco_utils import show


def _html(markdown_text: str) -> str:
    return markdown_it.MarkdownIt("commonmark").render(markdown_text)


def test_table_formats_numbers_by_column_and_carries_the_page_class():
    frame = pd.DataFrame({"share": [0.1234, None], "pairs": [12345, 7], "auc": [0.91234, 0.5]}, index=["a", "b"])
    html = show.table(frame, percent_columns=["share"], integer_columns=["pairs"]).to_html()
    assert 'class="psyco-table"' in html
    for shown in ("12.3%", "12,345", "0.912", ">-<"):
        assert shown in html
    with pytest.raises(KeyError, match="no column 'missing'"):
        show.table(frame, percent_columns=["missing"])


@pytest.mark.parametrize("text", ["*not emphasis* and [not](a link)", "1. Hire a lawyer", "- not a list", "<b>raw</b>",
                                  "costs $5 and $6", "a `code` span"])
def test_escaped_data_renders_as_the_same_text(text):
    rendered = _html(show.escape_markdown(text))
    assert "<em>" not in rendered and "<a " not in rendered and "<li>" not in rendered and "<b>" not in rendered
    assert "<code>" not in rendered and "\\" not in rendered  # no escape character left visible


def test_example_keeps_line_breaks_and_cuts_long_text_at_a_word():
    md = show.example("First line\nsecond line\n\nnew paragraph " + "word " * 200, "client", limit=80).data
    rendered = _html(md)
    assert "<strong>client</strong>" in rendered and "<br />" in rendered and "<blockquote>" in rendered
    assert "word [...]</p>" in rendered and len(md) < 200


def test_findings_and_the_paper_side_by_side():
    assert show.findings(["one", "two"], heading="What we found").data == "**What we found**\n\n- one\n- two"
    html = show.beside_the_paper({"train pairs": "141", "judge": "rubric"}, {"train pairs": "34,329"}, "tiny").to_html()
    assert "this run (tiny profile)" in html and "34,329" in html and "not reported" in html


def test_book_style_draws_figures_at_the_content_width():
    show.use_book_style()
    fig, _ = plt.subplots()
    assert fig.get_size_inches()[0] * fig.dpi == pytest.approx(show.FIGURE_WIDTH_IN * show.FIGURE_DPI)
    plt.close(fig)


def test_table_shows_data_literally_but_keeps_html_a_display_function_built():
    frame = pd.DataFrame({"reason": ["too short (< 100 chars)", "<b>not bold</b>"],
                          "value": ["0.9<br><small>[0.8, 1.0]</small>", "-"]}, index=["<i>a</i>", "b"])
    html = show.table(frame, html_columns=["value"]).to_html()
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html and "<b>" not in html and "&lt; 100" in html
    assert "&lt;i&gt;a&lt;/i&gt;" in html
    assert "0.9<br><small>[0.8, 1.0]</small>" in html
