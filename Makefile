# Every target but `setup` runs inside ./.venv, which `make setup` builds.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
SPLIT   ?=
BACKBONE ?=
METHOD  ?=
ARGS    ?=
DATA_ROOT ?= data
PAPER_CSV := $(DATA_ROOT)/ds_csv_ann/flickr30k_c1/csv_dir/test.csv
# `make eval` with no SPLIT/BACKBONE/METHOD: the paper's protocol (conf/experiment/paper.yaml) when ZSGNet's
# annotations are under DATA_ROOT, else the bundled demo (conf/experiment/demo.yaml). Chosen here, visibly.
EXPERIMENT ?= $(if $(SPLIT)$(BACKBONE)$(METHOD),,$(if $(wildcard $(PAPER_CSV)),paper,demo))

.PHONY: setup test test-slow test-slurm eval tables bench report clean

setup: $(VENV)/.done

$(VENV)/.done: pyproject.toml requirements.txt
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade "pip" "setuptools<82" wheel
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

test: setup
	$(VPY) -m pytest -q -m "not slow"

test-slow: setup   # the slow end-to-end checks (CI runs them after `make test`)
	$(VPY) -m pytest -q -m "slow and not slurm"

test-slurm: setup  # on a live Slurm cluster (sudo scripts/slurm_local.sh start); skipped when Slurm is not installed
	$(VPY) -m pytest -q -m slurm

eval: setup
	@$(if $(filter demo,$(EXPERIMENT)),echo "[make eval] no ZSGNet annotations at $(PAPER_CSV): running the bundled demo (experiment=demo)",true)
	@$(if $(filter paper,$(EXPERIMENT)),echo "[make eval] ZSGNet annotations found: running the paper's protocol (experiment=paper)",true)
	$(VPY) -m grounding.eval $(if $(EXPERIMENT),experiment=$(EXPERIMENT)) $(if $(SPLIT),split=$(SPLIT)) $(if $(BACKBONE),backbone=$(BACKBONE)) $(if $(METHOD),method=$(METHOD)) data_root=$(DATA_ROOT) $(ARGS)

tables: setup
	$(VENV)/bin/grounding-tables $(ARGS)

# HTML error-analysis report of the demo runs (made by `make eval` when absent); REPORT_RUNS=DIR… for others
REPORT_RUNS ?= multirun/demo
report: setup
	@if [ "$(REPORT_RUNS)" = multirun/demo ] && ! find multirun/demo -name predictions.jsonl 2>/dev/null | grep -q .; then \
	  $(MAKE) eval; fi
	$(VPY) -m grounding.evaluation.report $(REPORT_RUNS) -o outputs/report.html

bench: setup
	$(VPY) scripts/bench_box_search.py
	$(VPY) scripts/bench_pipeline.py
	$(VPY) scripts/bench_scaling.py
	$(VPY) scripts/bench_gpu.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
