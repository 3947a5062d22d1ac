# Two commands on a fresh machine with Python 3.11:  make demo  |  make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-all lint bench clean install

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lrsim demo --out lrsim-demo

# the suite without the long tests (13.5 min on 2 idle cores, 6 Dec 2026); CI also runs test-slow
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not gpu and not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow and not gpu" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# the batched trainer (chunked) vs the whole-batch trainer and the vmap peer at the goal points
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_batched.py --widths 32 128 512 --ks 64 256 \
		--variants vmap whole

clean:
	rm -rf $(VENV) build *.egg-info
