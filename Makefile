# Two commands on a fresh machine: `make book` and `make test` (each installs what it needs into .venv first).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= tiny
# torch first, pinned: an unpinned torch on a CPU machine would pull a multi-GB CUDA build. Where the CPU wheel is not
# already on local disk and there is no NVIDIA GPU, it comes from PyTorch's CPU wheel index.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= $(shell ls /opt/wheels/torch-2.13.0+cpu* >/dev/null 2>&1 || command -v nvidia-smi >/dev/null 2>&1 || echo https://download.pytorch.org/whl/cpu)

.PHONY: install test book run build sync check-sync check-pages standin benchmark clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): on Debian/Ubuntu install python3.11-venv (apt-get install python3.11-venv)"; exit 1; }; }
	$(PY) -m pip install --quiet --progress-bar off $(TORCH_SPEC) $(if $(wildcard /opt/wheels),--find-links /opt/wheels) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
	$(PY) -c "import shutil, torch, sys; gpu = shutil.which('nvidia-smi'); sys.exit(0 if gpu or torch.version.cuda is None else 'a CUDA build of torch was installed on a machine without a GPU: remove .venv and set TORCH_INDEX')"
	$(PY) -m pip install --quiet --progress-bar off -r requirements.txt -e .
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

book: install
	$(VENV)/bin/psyco-book run --profile $(PROFILE)
	$(VENV)/bin/psyco-book build

run: install
	$(VENV)/bin/psyco-book run --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

build: install
	$(VENV)/bin/psyco-book build

sync: install
	$(VENV)/bin/psyco-book sync

check-sync: install
	$(VENV)/bin/psyco-book sync --check

# The rendered pages as a reader meets them: the site check (no paths, progress bars, dumps, errors, secrets, broken
# links), then every page in headless Chromium at 1,280 x 800 (Debian: apt-get install chromium chromium-driver), with a
# full-page screenshot of each in _build/screenshots.
check-pages: install
	$(PY) -m psyco_book.sitecheck _build/html
	$(PY) -m psyco_book.browsercheck _build/html --screenshots _build/screenshots

# The colab and paper profiles end to end on a CPU: stand-in models, source fixtures, the loopback OpenAI-compatible
# server, sizes shrunk by standin/overlay.yaml (everything under STANDIN_ROOT). STANDIN_PROFILES=colab for one;
# STANDIN_PRECISION=bf16-cpu for bf16 weights and bf16 autocast on the CPU (the paper's precision, without a GPU).
STANDIN_PROFILES ?= colab paper
STANDIN_PRECISION ?= float32
STANDIN_ROOT ?= runs/standin
standin: install
	$(PY) -m standin.run --profile $(STANDIN_PROFILES) --precision $(STANDIN_PRECISION) --root $(STANDIN_ROOT)

benchmark: install
	$(PY) benchmarks/run.py

clean:
	rm -rf _build executed runs
