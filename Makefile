# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= outputs/demo

.PHONY: demo test venv system-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# torch first: any other spec pulls a multi-GB CUDA build (README, install notes)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# torch-harmonics 0.9.3 declares torch>=2.14; --no-deps keeps torch 2.13.0
	$(BIN)/pip install -q --no-deps torch-harmonics==0.9.3
	# real CMIP6 CMOR files for tests/diagnostics/test_io_realfiles.py; its iris dependency serves only its loader
	$(BIN)/pip install -q --no-deps esmvaltool-sample-data==0.0.4
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the report tests use (headless Chromium, pdftoppm); installed only when absent.
system-deps:
	@command -v chromium >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium poppler-utils >/dev/null; \
	    else echo "note: chromium/poppler-utils missing and not root: browser/PDF checks will be skipped"; fi; }

# The main job on the embedded default: synthesise -> train -> historical/+2K/+4K ensembles
# -> md-diagnose -> HTML/PDF report. Finished steps are skipped, interrupted ones resumed.
demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m emulator.cli.demo --out $(OUT)

# The layering contract first (.importlinter: diagnostics imports neither emulator nor reports,
# no import cycles), then two pytest workers, one thread each: more threads than cores slows
# torch down many-fold.
test: $(STAMP) system-deps
	$(BIN)/lint-imports --no-cache
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) outputs
