# mmseg_ext developer entry points. `make demo` and `make test` are the README's
# two commands; both set the environment up first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CFG ?= configs/segformer/segformer_mit-b0_1xb8-1k_synthimb-128x128.py
DEMO_DATA ?= data/synthetic_imbalance
DEMO_WORK ?= work_dirs/demo
# Two pytest-xdist workers (one per CI core, whole files per worker) where
# xdist is installed; CI adds --durations=25.
PYTEST_ARGS ?=
PYTEST_XDIST ?= $(shell $(PY) -c 'import xdist' 2>/dev/null && echo '-n 2 --dist loadfile')

.PHONY: setup demo test bench clean-demo

setup:
	VENV=$(VENV) bash tools/setup_env.sh

demo: setup
	$(PY) tools/misc/generate_demo_data.py $(DEMO_DATA)
	$(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_WORK) \
		--cfg-options train_dataloader.dataset.data_root=$(DEMO_DATA) \
		val_dataloader.dataset.data_root=$(DEMO_DATA) \
		test_dataloader.dataset.data_root=$(DEMO_DATA)
	$(PY) tools/test.py $(DEMO_CFG) "$$(cat $(DEMO_WORK)/last_checkpoint)" \
		--work-dir $(DEMO_WORK) \
		--cfg-options test_dataloader.dataset.data_root=$(DEMO_DATA)

test: setup
	$(PY) -m pytest tests -q $(PYTEST_XDIST) $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_class_weight_counting.py
	$(PY) benchmarks/bench_rle.py --quick
	$(PY) benchmarks/bench_hand_bone_pipeline.py
	$(PY) benchmarks/bench_slide_blend.py
	$(PY) benchmarks/bench_ensemble.py --images 10 50
	$(PY) benchmarks/bench_optim_step.py
	$(PY) benchmarks/bench_brats_convert.py --cases 4 --nproc 2
	$(PY) benchmarks/bench_brats_hd95.py --cases 3
	$(PY) benchmarks/bench_brats_case_eval.py --cases 2
	$(PY) benchmarks/bench_boundary_pipeline.py
	$(PY) benchmarks/bench_copy_paste.py
	$(PY) benchmarks/bench_step_gpu.py
	$(PY) benchmarks/bench_dense_crf.py
	@echo "the imbalance efficacy benchmark (~45 min on 2 cores) runs on its own:"
	@echo "  $(PY) benchmarks/bench_imbalance_efficacy.py --iters 300 --seeds 0 1 2"

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_WORK)
