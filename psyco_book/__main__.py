"""``python -m psyco_book ...`` is ``psyco-book ...``."""

import sys

from psyco_book.book import main

if __name__ == "__main__":
    sys.exit(main())
