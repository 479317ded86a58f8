"""The book's build and CI tools, kept apart from ``psyco_utils`` (the package the chapters import).

* :mod:`psyco_book.book`: the ``psyco-book`` command (``python -m psyco_book`` does the same): execute the chapters
  with papermill, render them with Jupyter Book, keep the paired notebooks in sync.
* :mod:`psyco_book.lifeline`: a stopped run stops; ``psyco-book`` and the notebook kernels it starts end together.
* :mod:`psyco_book.sitecheck`: checks of the rendered HTML (errors, secrets, personal data, machine paths, progress
  bars, object dumps, broken links).
* :mod:`psyco_book.browsercheck`: every page in headless Chromium at 1,280 x 800 (layout, tables, figures,
  navigation), with a screenshot of each.

``psyco_book`` imports ``psyco_utils``; ``psyco_utils`` never imports ``psyco_book``
(``tests/test_package_structure.py``).
"""

__all__ = ["book", "browsercheck", "kernel", "lifeline", "sitecheck"]
