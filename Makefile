# The two commands of the README:
#   make paper   set up, then run the workflow on the embedded default -> paper/ms.pdf
#   make test    set up, then run the test suite
# Both are idempotent: the environment is reused and Snakemake redoes no finished work.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2
# Debian packages of the system tools the workflow calls (binary: package).
# g++ and the Python headers: torch.compile (inductor) builds the CPU training kernels with them.
SYSTEM_TOOLS := SWarp:swarp latexmk:latexmk pdflatex:texlive-latex-recommended \
                pdftotext:poppler-utils g++:g++
SYSTEM_PACKAGES := swarp latexmk texlive-latex-recommended texlive-latex-extra \
                   texlive-fonts-recommended texlive-publishers poppler-utils g++ python3-dev

.PHONY: all setup system-tools profiles paper test lint dryrun clean

all: paper

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The lock pins every Python package; `torch==2.13.0` is the CPU build.
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

system-tools:
	@missing=""; for t in $(SYSTEM_TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system tools:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "error: missing system tools (Debian packages):$$missing"; \
	    echo "       run: sudo apt-get install$$missing   (or make setup as root)"; exit 1; \
	  fi; \
	fi

# `snakemake --profile slurm` / `--profile local` as typed: link the profiles into
# Snakemake's user config folder (a profile of yours with that name is left alone, with a notice).
profiles: $(VENV)/.installed
	$(BIN)/python tools/install_profiles.py

setup: $(VENV)/.installed system-tools profiles

paper: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) --rerun-incomplete --printshellcmds --show-failed-logs

# pytest-xdist: one worker per core; --dist loadfile keeps each test file (and its
# module fixtures: the e2e run, the loopback SLURM cluster) on one worker.
test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n $(CORES) --dist loadfile

lint: setup
	$(BIN)/snakemake --lint

dryrun: setup
	$(BIN)/snakemake -n --quiet rules

clean:
	rm -rf results logs paper/ms.pdf
