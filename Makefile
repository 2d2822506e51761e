# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= outputs/demo
export OMP_NUM_THREADS ?= 2

.PHONY: demo test venv system-deps clean bench

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# torch first: any other spec pulls a multi-GB CUDA build (docs/INSTALL notes)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# torch-harmonics 0.9.3 declares torch>=2.14; --no-deps keeps torch 2.13.0
	$(BIN)/pip install -q --no-deps torch-harmonics==0.9.3
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the report tests use (headless Chromium, pdftoppm); installed only when absent.
system-deps:
	@command -v chromium >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium poppler-utils >/dev/null; \
	    else echo "note: chromium/poppler-utils missing and not root: browser/PDF checks will be skipped"; fi; }

# The main job on the embedded default (synthetic climate with planted truth).
demo: $(STAMP)
	$(BIN)/md-synth --out $(OUT)/synthetic --grid 5.625 --start 1978-10 --end 2024-12 --seed 0
	$(BIN)/md-describe $(OUT)/synthetic
	@echo "demo outputs: $(OUT)/"

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) outputs
