# The two commands a fresh machine needs:  make matrix   and   make test
# Everything they need is set up here (a host virtualenv in .venv).

HOST_PYTHON ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python

BACKEND  ?= venv
DEVICE   ?= cpu
WEIGHTS  ?= auto
IMAGENET ?=
LIMIT    ?=
RUN      ?= $(BACKEND)-$(DEVICE)
ARGS     ?=

# pyenv: make the 3.7 interpreter visible to tox and the venv backend.
PYENV_37 := $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.7(\.|$$)' | tail -n1)
PYENV_HOST := $(shell pyenv version-name 2>/dev/null)
ifneq ($(PYENV_37),)
export PYENV_VERSION := $(PYENV_HOST):$(PYENV_37)
endif

RUN_ARGS = --backend $(BACKEND) --device $(DEVICE) --weights $(WEIGHTS) --run $(RUN) \
           $(if $(IMAGENET),--imagenet $(IMAGENET)) $(if $(LIMIT),--limit $(LIMIT)) $(ARGS)

.PHONY: matrix plan report test setup clean

matrix: $(VENV)/.ready
	$(PY) -m runner plan $(if $(IMAGENET),--imagenet $(IMAGENET)) --device $(DEVICE)
	$(PY) -m runner run $(RUN_ARGS)

plan: $(VENV)/.ready
	$(PY) -m runner plan $(if $(IMAGENET),--imagenet $(IMAGENET)) --device $(DEVICE) $(ARGS)

report: $(VENV)/.ready
	$(PY) -m runner report --run $(RUN)

test: $(VENV)/.ready
	DLMATRIX_SAMPLE=$${DLMATRIX_SAMPLE:-$(abspath ../shared/data/imagenet-val-sample)} $(VENV)/bin/tox $(ARGS)

setup: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml
	$(HOST_PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "the host needs Python >= 3.11 (HOST_PYTHON=...)")'
	$(HOST_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]' 'tox>=4'
	touch $@

clean:
	rm -rf $(VENV) .tox
