# Two commands for a newcomer: `make grade` (demo) and `make test`. Both create .venv when missing.
PY        ?= python3
VENV      := .venv
PYTHON    := $(VENV)/bin/python
ASSIGNMENT ?= comp4423_a2
SUBMISSIONS ?= fixtures/examples/$(ASSIGNMENT)
OUT       ?= out/$(ASSIGNMENT)
TIMES     ?= $(wildcard $(SUBMISSIONS)/times.csv)
JOBS      ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: grade test bench starter fixtures selfcheck env sandbox clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PYTHON) -m pip install -q torch==2.14.1 torchvision==0.29.1 numpy scipy matplotlib hypothesis pytest pytest-timeout \
	  loss-landscapes==3.0.6 nbformat nbclient ipykernel scikit-image tqdm \
	  opencv-python-headless==5.0.0.93 pypdf==7.1.1 ray==2.60.0 2>&1 | grep -v "is ignored" || true
	$(PYTHON) -c "import torch, torchvision, numpy, scipy, matplotlib, hypothesis, pytest, pytest_timeout, loss_landscapes, nbformat, nbclient, ipykernel, skimage, tqdm, cv2, pypdf, ray"
	touch $@

env: $(VENV)/.installed sandbox

# bubblewrap is the sandbox; install it when we can (root with apt), otherwise say what is missing.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 || echo "WARNING: could not install bubblewrap"; \
	  else echo "WARNING: bubblewrap (bwrap) is not installed: the grader will fall back to rlimits only"; fi; }

grade: env
	$(PYTHON) -m grader grade $(SUBMISSIONS) --assignment $(ASSIGNMENT) --out $(OUT) --jobs $(JOBS) $(if $(TIMES),--times $(TIMES))

test: env
	$(PYTHON) -m pytest

# Speed at class scale; figures go to tests/bench_results.md (BENCH_N submissions per synthetic class), then a
# notebook class graded by this grader and by nbgrader's autograde side by side (nbgrader installed in .bench/).
BENCH_N ?= 40
bench: env
	$(PYTHON) tests/bench.py --n $(BENCH_N)
	$(PYTHON) tests/bench_nbgrader.py
	$(PYTHON) tests/bench_ray.py

starter: env
	$(PYTHON) -m grader starter --assignment $(ASSIGNMENT)

fixtures: env
	$(PYTHON) fixtures/make_$(ASSIGNMENT).py

selfcheck: starter fixtures test

clean:
	rm -rf out .pytest_cache
