# The two commands a fresh machine needs:  make matrix   and   make test
# Everything they need is set up here (a host virtualenv in .venv).

# pipefail: a benchmark piped through tee still fails the target when it fails.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c

HOST_PYTHON ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python

BACKEND  ?= venv
DEVICE   ?= cpu
WEIGHTS  ?=
IMAGENET ?=
LIMIT    ?=
RUN      ?= $(BACKEND)-$(subst :,,$(DEVICE))
GPUS     ?=
ARGS     ?=

# tox's historical probe envs need Python 3.7 and 3.9. pyenv's shim fails in tox's clean
# environment unless a version is selected, so with pyenv hand tox the interpreters' own paths.
PYENV_37 := $(shell pyenv prefix 3.7 2>/dev/null)
ifneq ($(PYENV_37),)
export DLMATRIX_PY37 ?= $(PYENV_37)/bin/python3.7
endif
PYENV_39 := $(shell pyenv prefix 3.9 2>/dev/null)
ifneq ($(PYENV_39),)
export DLMATRIX_PY39 ?= $(PYENV_39)/bin/python3.9
endif

# One selection for everything `make matrix` does: run --show-plan prints the plan of exactly the cells it runs,
# ARGS included.
CELL_ARGS = --device $(DEVICE) $(if $(WEIGHTS),--weights $(WEIGHTS)) $(if $(IMAGENET),--imagenet $(IMAGENET)) $(if $(LIMIT),--limit $(LIMIT))

.PHONY: matrix plan report test test-host test-probes failures-table host-lock bench bench-overhead bench-nvml bench-eval bench-feed setup clean

# BACKEND=docker first makes sure the CPU base image exists (debootstrap; no registry needed).
matrix: $(VENV)/.ready
	$(if $(filter docker,$(BACKEND)),$(if $(filter cpu,$(DEVICE)),$(PY) -m runner docker-base))
	$(PY) -m runner run --show-plan $(CELL_ARGS) --backend $(BACKEND) --run $(RUN) $(if $(GPUS),--gpus $(GPUS)) $(ARGS)

plan: $(VENV)/.ready
	$(PY) -m runner plan $(CELL_ARGS) --backend $(BACKEND) $(ARGS)

report: $(VENV)/.ready
	$(PY) -m runner report --run $(RUN)

# The probe envs build each row through the host package (python -m runner env): DLMATRIX_HOST_PY.
TOX = DLMATRIX_HOST_PY=$(abspath $(PY)) DLMATRIX_SAMPLE=$${DLMATRIX_SAMPLE:-$(abspath ../shared/data/imagenet-val-sample)} \
      $(VENV)/bin/tox
PROBE_ENVS = $(shell sed -n 's/^\[testenv:\(probe-[a-z0-9]*\)\]$$/\1/p' tox.ini | paste -sd, -)
# TEST_JOBS=2: the host's tests run beside the eight probe envs and then the fault tests (one after
# another), about as long together; much of each is waiting (imports, subprocesses, builds,
# containers), so the two share a 2-core machine well. The probe envs print as they go; the host's
# output is kept in .tox/host.log and shown when it ends. TEST_JOBS=1 runs every env in turn;
# ARGS="-e probe-tf113" runs those tox arguments instead. tox's own `tox p` is not used: where CI
# is detected it ignores its -p limit.
TEST_JOBS ?= 2
test: $(VENV)/.ready
ifneq ($(strip $(ARGS)),)
	$(TOX) $(ARGS)
else ifeq ($(TEST_JOBS),1)
	$(TOX)
else
	$(MAKE) --no-print-directory -j 2 test-host test-probes
endif

test-host: $(VENV)/.ready
	@mkdir -p .tox && echo "host tests: beside the probe envs; their output goes to .tox/host.log (tail -f it to follow) and is shown when they end"
	@start=$$SECONDS; $(TOX) -e host > .tox/host.log 2>&1; status=$$?; cat .tox/host.log; \
	    echo "host tests: exit $$status after $$((SECONDS - start)) s"; exit $$status

test-probes: $(VENV)/.ready
	$(TOX) -e $(PROBE_ENVS),host-faults

# README's "Failures and bad input" table, made from the fault tests (all of them, slow and docker ones too).
failures-table: $(VENV)/.ready
	DLMATRIX_SAMPLE=$${DLMATRIX_SAMPLE:-$(abspath ../shared/data/imagenet-val-sample)} $(PY) -m tests.failures_table $(ARGS)

# Benchmarks (not tests), each output committed: runner vs bare loop, NVML sampler on vs off,
# error-suite wall time vs pure model time. On a GPU host: make bench DEVICE=cuda BENCH_BACKEND=local
BENCH_BACKEND ?= venv
EVAL_IMAGES   ?= 50000
bench: bench-overhead bench-nvml bench-eval

bench-overhead: $(VENV)/.ready
	$(PY) benchmarks/harness_overhead.py --device $(DEVICE) --backend $(BENCH_BACKEND) $(ARGS) | tee benchmarks/results/harness_overhead-$(DEVICE).txt

bench-nvml: $(VENV)/.ready
	$(PY) benchmarks/nvml_cost.py --device $(DEVICE) --backend $(BENCH_BACKEND) $(ARGS) | tee benchmarks/results/nvml_cost-$(DEVICE).txt

# The error suite's host side against a stand-in GPU (benchmarks/eval_feed.py): no GPU needed.
bench-feed: $(VENV)/.ready
	$(PY) benchmarks/eval_feed.py --images $(EVAL_IMAGES) $(ARGS) | tee benchmarks/results/eval_feed-cpu.txt

bench-eval: $(VENV)/.ready
	$(PY) benchmarks/eval_speed.py --device $(DEVICE) --backend $(BENCH_BACKEND) --images $(EVAL_IMAGES) $(ARGS) | tee benchmarks/results/eval_speed-$(DEVICE).txt

setup: $(VENV)/.ready

# The host's own packages come from locks/host.txt: every package at an exact version, every file
# checked against its sha256 (`make host-lock` re-makes it from pyproject.toml and locks/host-tools.in,
# keeping the versions it has where they still fit). The package itself is then installed in place.
$(VENV)/.ready: pyproject.toml locks/host.txt
	$(HOST_PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "the host needs Python >= 3.11 (HOST_PYTHON=...)")'
	$(HOST_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r locks/host.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

host-lock:
	$(VENV)/bin/uv pip compile pyproject.toml locks/host-tools.in --extra test --universal --python-version 3.11 \
	    --generate-hashes --index-strategy unsafe-best-match --custom-compile-command "make host-lock" -o locks/host.txt

clean:
	rm -rf $(VENV) .tox
