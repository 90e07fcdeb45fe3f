# nii-atr: the two commands of the README are `make demo` and `make test`.
# Both run `setup` first; it fetches ONNX Runtime once and is skipped afterwards.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

ORT_VERSION := 1.31.1
ORT_DIR     := .cache/onnxruntime
ORT_LIB     := $(ORT_DIR)/libonnxruntime.so.$(ORT_VERSION)
PYTHON      ?= python3
CARGO       ?= cargo
DEMO_DIR    := out/demo

.PHONY: all setup demo test fmt clippy unit doc bench fuzz models clean-cache

all: test

## setup: fetch libonnxruntime from the PyPI wheel (ort's own download host is unreachable here)
setup: $(ORT_LIB) .cache/toolchain-ok

.cache/toolchain-ok:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust (rustup) first" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "error: rustfmt missing: run 'rustup component add rustfmt'" >&2; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "error: clippy missing: run 'rustup component add clippy'" >&2; exit 1; }
	@mkdir -p .cache && touch $@

$(ORT_LIB):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; it is needed once to fetch the onnxruntime wheel" >&2; exit 1; }
	@echo "setup: fetching onnxruntime==$(ORT_VERSION) wheel from PyPI (once)"
	@mkdir -p $(ORT_DIR)/wheel
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --dest $(ORT_DIR)/wheel onnxruntime==$(ORT_VERSION)
	$(PYTHON) -c 'import glob, sys, zipfile; \
	  whl = sorted(glob.glob("$(ORT_DIR)/wheel/onnxruntime-$(ORT_VERSION)-*.whl"))[-1]; \
	  name = "onnxruntime/capi/libonnxruntime.so.$(ORT_VERSION)"; \
	  data = zipfile.ZipFile(whl).read(name); \
	  open("$(ORT_LIB).part", "wb").write(data); \
	  print(f"setup: extracted {name} ({len(data) >> 20} MiB) from {whl}")'
	@mv $(ORT_LIB).part $(ORT_LIB)
	@rm -rf $(ORT_DIR)/wheel

## demo: build, generate a few 5 mm scans (once), show `info` and views, inspect them
demo: setup
	$(CARGO) build --release --quiet
	@mkdir -p $(DEMO_DIR)
	./target/release/nii-atr demo --dataset datasets/generated/demo --recipe datasets/recipes/demo.toml --out $(DEMO_DIR)

## test: every check CI runs
test: setup fmt clippy unit doc

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --all-targets --locked
	$(CARGO) test --workspace --doc --locked

# Every public item is documented (missing_docs, denied through clippy) and the docs build
# without a warning (a broken link or a stray <tag> in a doc comment fails here).
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

## fuzz: every reader of outside input under libFuzzer for FUZZ_SECONDS each (not part of
## `make test`, which stays on stable): nightly Rust and cargo-fuzz are installed on first use,
## the corpora seeded from the project's fixtures (fuzz/seed.sh). A crash stops the run and
## leaves its input in fuzz/artifacts/<target>/; it then becomes a regression test.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := scan_descriptor scan_image pipeline_config model_spec coco yolo truth recipe profile hs_reference
CARGO_FUZZ   := .cache/cargo-fuzz/bin/cargo-fuzz

$(CARGO_FUZZ):
	$(CARGO) install --locked --root .cache/cargo-fuzz cargo-fuzz@0.13.2

fuzz: $(CARGO_FUZZ)
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	$(CARGO) build --quiet
	fuzz/seed.sh target/debug/nii-atr
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  PATH="$(CURDIR)/.cache/cargo-fuzz/bin:$$PATH" cargo +nightly fuzz run --fuzz-dir fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
	    | grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|ERROR|panicked|Test unit written|Done ' || exit 1; \
	done
	@echo "fuzz: $(words $(FUZZ_TARGETS)) targets, $(FUZZ_SECONDS) s each, no crash"

## bench: criterion benches (not part of `make test`)
bench: setup
	$(CARGO) bench --workspace

## models: regenerate training data, retrain and export both shipped models (not part of `make test`)
# Each model trains within its --budget-min on 2 CPU cores, from the recipe it shipped from (the
# test splits are never touched here). The detector (spec version 4) trains on the first
# DET_TRAIN_CASES of the cargo-bench-v2 train split with its trunk in bf16 (`--bf16`; on a CPU
# without avx512_bf16 or AMX the script warns, and fp32 is faster there) and picks weights and
# thresholds on the first VAL_CASES of v2 val. The anomaly model (version 10: whole 256-px tiles as
# crops, 4-12 synthetic objects each, its map averaged over 7 x 7 cells) trains on the clean tiles
# of the first ANO_TRAIN_CASES of the cargo-bench (v1) train split and sets its threshold on the
# first VAL_CASES of v1 val. Tiles are exported with the default config, so dead detector rows are
# repaired as at inference (version 10's weights were trained before the repair existed; its
# threshold was set with it). Needs about 95 GB of disk (every val tile is exported for the
# thresholds; the anomaly export alone is 25 GB) and, with generation, about 3 hours.
MODELS_DATA ?= datasets/generated/models-bench
DET_RECIPE  ?= datasets/recipes/cargo-bench-v2.toml
ANO_RECIPE  ?= datasets/recipes/cargo-bench.toml
DET_TRAIN_CASES ?= 1600
VAL_CASES   ?= 400
ANO_TRAIN_CASES ?= 1600
# Training stops at the end of its epochs or of its time budget (minutes), whichever comes first;
# the shipped detector ran its 40 epochs in 52 minutes (41,500 steps of 16), the anomaly model
# was stopped by its budget after 4.3 of 30 epochs (12,560 steps of 8 tiles).
DET_BUDGET_MIN ?= 55
ANO_BUDGET_MIN ?= 55
TRAIN_VENV  := .cache/train-venv
TRAIN_PY    := $(TRAIN_VENV)/bin/python
DET_SPEC    := models/concealment-det/model.toml

$(TRAIN_VENV)/ok: models/train/requirements.txt
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install --quiet -r models/train/requirements.txt
	@touch $@

models: setup $(TRAIN_VENV)/ok
	$(CARGO) build --release --quiet
	./target/release/nii-atr synth --recipe $(DET_RECIPE) --split train --cases $(DET_TRAIN_CASES) \
	  --no-preview -o $(MODELS_DATA)/det
	./target/release/nii-atr synth --recipe $(DET_RECIPE) --split val --cases $(VAL_CASES) \
	  --no-preview -o $(MODELS_DATA)/det
	./target/release/nii-atr synth --recipe $(ANO_RECIPE) --split train --cases $(ANO_TRAIN_CASES) \
	  --no-preview -o $(MODELS_DATA)/anomaly
	./target/release/nii-atr synth --recipe $(ANO_RECIPE) --split val --cases $(VAL_CASES) \
	  --no-preview -o $(MODELS_DATA)/anomaly
	./target/release/nii-atr tiles --dataset $(MODELS_DATA)/det/train --spec $(DET_SPEC) --cases $(DET_TRAIN_CASES) \
	  --config models/pipeline.default.toml --keep-background 0.1 -o $(MODELS_DATA)/det/tiles-train
	./target/release/nii-atr tiles --dataset $(MODELS_DATA)/det/val --spec $(DET_SPEC) \
	  --config models/pipeline.default.toml --keep-background 1.0 -o $(MODELS_DATA)/det/tiles-val
	./target/release/nii-atr tiles --dataset $(MODELS_DATA)/anomaly/train --spec $(DET_SPEC) --cases $(ANO_TRAIN_CASES) \
	  --config models/pipeline.default.toml --keep-background 0.35 --seed 1 -o $(MODELS_DATA)/anomaly/tiles-train
	./target/release/nii-atr tiles --dataset $(MODELS_DATA)/anomaly/val --spec $(DET_SPEC) \
	  --config models/pipeline.default.toml --keep-background 1.0 -o $(MODELS_DATA)/anomaly/tiles-val
	cd models/train && ../../$(TRAIN_PY) detector.py --train ../../$(MODELS_DATA)/det/tiles-train \
	  --val ../../$(MODELS_DATA)/det/tiles-val --spec ../../$(DET_SPEC) --out ../concealment-det \
	  --epochs 40 --batch 16 --lr 3e-3 --crop 128 --crop-share 0.7 --whole-every 2 --repeat-thresh 0.2 \
	  --ignore-below 6 --ema-decay 0.997 --ema-tau 300 --seed 6 --threads 2 --budget-min $(DET_BUDGET_MIN) \
	  --bf16 --version 4
	cd models/train && ../../$(TRAIN_PY) anomaly.py --train ../../$(MODELS_DATA)/anomaly/tiles-train \
	  --val ../../$(MODELS_DATA)/anomaly/tiles-val --spec ../../$(DET_SPEC) --out ../cargo-anomaly \
	  --crop 256 --batch 8 --objects-per-crop 4 12 --windowed-synth --threads 2 --budget-min $(ANO_BUDGET_MIN) \
	  --map-smoothing 7 --version 10
	sed -e 's/^threshold = .*/threshold = 0.0/' models/cargo-anomaly/model.toml > eval/suites/cargo-anomaly-rank.toml

clean-cache:
	rm -rf .cache
