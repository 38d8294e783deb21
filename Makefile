# Two commands do all setup on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: install run test bench lint proto clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	# torch first: the CPU wheel on CPU machines here, PyPI's default (CUDA) wheel on GPU machines.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) proto

proto: $(STAMP)
	$(PY) -c 'from pixelplan.distributed.grpc.build import build; build(force=True)'

# The main job on an embedded default: GLAMOR on the 7x7 grid world, local mode (a few CPU minutes);
# the grid recipe (distributed/recipes.py) holds its settings: tiny preset, 16000 steps, 8 envs.
run: install
	$(PY) -m pixelplan.distributed.cli train --agent glamor --env grid --recipe grid --mode local \
	  --out runs/glamor-grid --force

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m pixelplan.bench all

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) distributed/grpc/generated runs bench/results
