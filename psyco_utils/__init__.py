"""psyco_utils: the helper package of the PsyCoPref book (one module per stage of the pipeline)."""

import warnings

# tqdm.auto warns in every notebook that has no ipywidgets; the book's progress bars fall back to text
warnings.filterwarnings("ignore", message="IProgress not found")
