# downloader: `make demo` and `make test` work on a fresh clone with only python3 installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help install demo test lint typecheck pytest bench mutation clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# the tool and the extras a user wants: uvloop, pycurl, pyreqwest (the default backend), pyarrow, dnspython,
# Pillow (the image stage: resizing for datasets, and the report's contact sheet)
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[fast,curl,reqwest,parquet,dns,images]'
	@# bytecode for the editable package too, so start-up does not compile it where PYTHONDONTWRITEBYTECODE is set
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q downloader
	@touch $(STAMP)

# the test tools on top: pytest, hypothesis, mypy, ruff, the type stubs, matplotlib for bench --plot, Pillow
# (images, and the report's contact sheet), Dask (--dask), aiobotocore (s3:// output) and SeaweedFS (its tests)
$(DEV): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[fast,plot,curl,reqwest,parquet,dns,images,report,dask,mysql,postgres,s3,dev]'
	@touch $(DEV)

install: $(STAMP) ## create .venv and install the tool with the fast, curl, reqwest, parquet, dns and images extras (no test tools)

demo: $(STAMP) ## a WebDataset of 300 resized images from the embedded local origin, and its report page
	$(BIN)/downloader demo

lint: $(DEV) ## ruff
	$(BIN)/ruff check downloader tests fixtures benchmarks
	$(BIN)/ruff format --check downloader tests fixtures benchmarks

typecheck: $(DEV) ## mypy --strict
	$(BIN)/mypy

pytest: $(DEV) ## the test suite
	$(BIN)/pytest

test: lint typecheck pytest ## the whole gate: ruff, mypy --strict, pytest

bench: $(STAMP) ## compare the backends on the embedded origin (under a minute; the full sweep: downloader bench --demo --full)
	$(BIN)/downloader bench --demo

mutation: $(STAMP) ## mutation testing of the core modules with mutmut (slow; docs/mutation.md)
	@$(BIN)/python -c 'import mutmut' 2>/dev/null || $(BIN)/python -m pip install -q -e '.[mutation]'
	$(BIN)/mutmut run --max-children 1
	$(BIN)/mutmut results

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache mutants
