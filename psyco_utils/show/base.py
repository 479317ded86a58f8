"""What every page shares: the figure style and size, styled tables, findings and examples as Markdown.

Figures are drawn at the width of the book's content column (``FIGURE_WIDTH_IN`` at ``FIGURE_DPI``), so the browser
shows them at their own size and axis text stays readable on a 1,280 px screen.  Tables are pandas ``Styler`` objects
with the class ``psyco-table`` (styled by ``book/_static/psyco.css``), numbers formatted by column.  Findings and
example texts are Markdown, so they wrap with the page instead of running off its right edge as printed lines would.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown

__all__ = [
    "FIGURE_WIDTH_IN", "FIGURE_DPI", "TABLE_CLASS", "use_book_style", "table", "findings", "example",
    "beside_the_paper", "escape_markdown", "percent", "integer", "legend_below", "by_hand_check",
]

#: Width of a figure in inches; at FIGURE_DPI it is the content column's width in pixels (about 680 px).
FIGURE_WIDTH_IN = 6.8
FIGURE_DPI = 100
#: The CSS class every table carries.
TABLE_CLASS = "psyco-table"


def use_book_style() -> None:
    """Matplotlib settings for every figure of the book: content-column width, readable text, light grid."""
    plt.rcParams.update({
        "figure.figsize": (FIGURE_WIDTH_IN, 3.4),
        "figure.dpi": FIGURE_DPI,
        "savefig.dpi": FIGURE_DPI,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.fontsize": 9,
        "legend.framealpha": 0.9,
    })
    try:  # the inline backend's default "retina" doubles the pixels and the page then halves the figure
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except ImportError:  # pragma: no cover - matplotlib-inline comes with ipykernel
        pass


def legend_below(ax, ncol: int = 3) -> None:
    """The legend under the axes, where it cannot cover bars or lines."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=ncol, frameon=False)


def percent(value, digits: int = 1) -> str:
    """0.1234 -> '12.3%'; a missing value -> '-'."""
    return "-" if value is None or pd.isna(value) else f"{100 * float(value):.{digits}f}%"


def integer(value) -> str:
    """12345 -> '12,345'; a missing value -> '-'."""
    return "-" if value is None or pd.isna(value) else f"{int(value):,}"


def table(frame: pd.DataFrame | pd.Series, *, caption: str | None = None, decimals: int = 3,
          percent_columns: Iterable[str] = (), integer_columns: Iterable[str] = (), hide_index: bool = False,
          html_columns: Iterable[str] = ()):
    """A styled table: floats with ``decimals`` digits, shares in ``percent_columns`` as percentages, counts in
    ``integer_columns`` with thousands separators, missing values as '-'.  Text from the data is shown literally
    (HTML-escaped), except in ``html_columns``, whose cells a display function built as HTML."""
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    percent_columns, integer_columns, html_columns = list(percent_columns), list(integer_columns), list(html_columns)
    for name in [*percent_columns, *integer_columns, *html_columns]:
        if name not in frame.columns:
            raise KeyError(f"table: no column {name!r} to format (columns: {list(frame.columns)})")
    styler = frame.style.format(precision=decimals, thousands=",", na_rep="-", escape="html")
    styler = styler.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    if html_columns:
        styler = styler.format(str, subset=html_columns, na_rep="-")
    if percent_columns:
        styler = styler.format(percent, subset=percent_columns)
    if integer_columns:
        styler = styler.format(integer, subset=integer_columns)
    if caption:
        styler = styler.set_caption(html.escape(caption))
    if hide_index:
        styler = styler.hide(axis="index")
    return styler.set_table_attributes(f'class="{TABLE_CLASS}"')


def by_hand_check(check, caption: str, count_rows: Iterable[str] = ()):
    """A quantity computed by hand beside the library's value for the same data, and their difference
    (:class:`psyco_utils.by_hand.ByHandCheck`), with the tolerance in the caption; ``count_rows`` are counts, shown
    without decimals."""
    frame = check.table
    styled = table(frame, caption=f"{caption}; tolerance {check.tolerance:g} (absolute)",
                   decimals=6).format("{:+.1e}", subset=["difference"])
    counts = [row for row in count_rows if row in frame.index]
    if counts:
        styled = styled.format(integer, subset=pd.IndexSlice[counts, [c for c in frame.columns if c != "difference"]])
    return styled


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|$~])")


def escape_markdown(text: str) -> str:
    """Text shown literally inside Markdown: no emphasis, links, HTML, math or list markers from the data."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
    text = re.sub(r"^(\s*)(\d+)([.)])(\s)", r"\1\2\\\3\4", text, flags=re.M)  # "1. Hire" is not a list item
    return re.sub(r"^(\s*)([-+*])(\s)", r"\1\\\2\3", text, flags=re.M)


def findings(points: Iterable[str] | str, heading: str | None = None) -> Markdown:
    """Findings computed from results, as a Markdown list (or one paragraph) that wraps with the page.  The points
    are Markdown written by the chapter; put data through ``escape_markdown`` first."""
    if isinstance(points, str):
        body = points
    else:
        body = "\n".join(f"- {p}" for p in points)
    return Markdown((f"**{heading}**\n\n" if heading else "") + body)


def example(text: str, label: str, limit: int | None = 600) -> Markdown:
    """One example text (a client statement, a response) as a labelled block quote, cut at ``limit`` characters."""
    shown = str(text)
    if limit and len(shown) > limit:
        shown = shown[:limit].rsplit(" ", 1)[0] + " [...]"
    lines = escape_markdown(shown).splitlines()
    # a backslash at the end of a line is a hard break: the text keeps its own line breaks
    quoted = "\n".join((f"> {line}" + ("\\" if k < len(lines) - 1 and lines[k + 1].strip() else ""))
                       if line.strip() else ">" for k, line in enumerate(lines))
    return Markdown(f"**{label}**\n\n{quoted}")


def beside_the_paper(ours: Mapping[str, object], paper: Mapping[str, object], profile: str,
                     paper_label: str = "paper (Zhang et al. 2025)"):
    """Two columns, this run and the paper, on the rows of ``ours``; a row the paper lacks reads 'not reported'.
    Values are shown as given: format numbers before (``percent``, ``integer``)."""
    rows = list(ours)
    frame = pd.DataFrame({f"this run ({profile} profile)": [str(ours[r]) for r in rows],
                          paper_label: [str(paper[r]) if r in paper else "not reported" for r in rows]}, index=rows)
    return table(frame)
