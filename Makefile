# Everyday targets. `make install` once, then `make test` / `make notebooks`.
PY ?= python
PROFILE ?= classroom
# pytest-xdist workers for `make test` (JOBS=0: in one process); each gets cores / JOBS threads (tests/conftest.py)
JOBS ?= 2
# notebooks run at once by `make notebooks` (each with cores / NB_JOBS threads); 1 keeps each notebook's runtime its own
NB_JOBS ?= 1

.PHONY: install test lint notebooks bench quality clean

install:  ## CPU torch first (a plain `torch` pulls a multi-GB CUDA build), then soralab with its extras
	$(PY) -m pip install torch==2.13.0 || $(PY) -m pip install torch
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

quality:  ## the quality record (about an hour on 2 cores; needs SORALAB_GLUE_DIR)
	bash benchmarks/quality.sh

clean:
	rm -rf runs .pytest_cache .ruff_cache
