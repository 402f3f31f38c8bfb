# Everyday targets. `make install` once, then `make test` / `make notebooks`.
PY ?= python
PROFILE ?= classroom
# pytest-xdist workers for `make test` (JOBS=0: in one process); each gets cores / JOBS threads (tests/conftest.py)
JOBS ?= 2
# notebooks run at once by `make notebooks` (each with cores / NB_JOBS threads); 1 keeps each notebook's runtime its own
NB_JOBS ?= 1

.PHONY: install test lint notebooks bench quality clean

# Where torch comes from. Empty: pip's own settings (on this project's machines torch==2.13.0 is a CPU build from a local
# wheel folder). On another Linux machine PyPI's torch bundles CUDA (gigabytes); for a CPU-only one use
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_FROM = $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))

install:  ## torch first (see TORCH_INDEX), then soralab with its extras
	$(PY) -m pip install torch==2.13.0 $(TORCH_FROM) || $(PY) -m pip install torch $(TORCH_FROM)
	$(PY) -m pip install -e ".[dev,notebooks]"

test: lint  ## what CI runs: lint, then every test and every notebook (smoke profile, via nbmake), on $(JOBS) workers
	SORALAB_PROFILE=smoke $(PY) -m pytest -q -n $(JOBS) --dist worksteal --durations=12 --nbmake --nbmake-timeout=300 \
		tests notebooks

lint:
	$(PY) -m ruff check soralab tests benchmarks

notebooks:  ## the notebook suite with papermill in $(PROFILE) (smoke | classroom | paper)
	SORALAB_PROFILE=$(PROFILE) $(PY) -m soralab.cli notebooks --profile $(PROFILE) --jobs $(NB_JOBS)

bench:  ## train-step speed: PEFT LoRA vs soralab LoRA vs SoRA
	$(PY) benchmarks/speed.py

quality:  ## the quality record (about 7.5 hours on 2 cores, resumable; needs SORALAB_GLUE_DIR)
	bash benchmarks/quality.sh

clean:
	rm -rf runs .pytest_cache .ruff_cache
