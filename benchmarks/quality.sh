#!/usr/bin/env bash
# Quality record v2: LoRA r=8, SoRA r_max=8 (the recipe's default strength), AdaLoRA (PEFT, r 12 -> 8) and BitFit
# on MRPC, RTE and STS-B (full training sets) and SST-2 (20,000 training rows), packaged all-MiniLM-L6-v2, CPU,
# every other value from soralab's recipes. Seeds are the paper's (0 21 42 81 100), run one seed at a time over every
# task and method, so an interrupted record still holds whole seeds. Resumable: rerun the same command.
# Runs for hours on 2 cores: run it alone, never beside tests. Writes runs/quality/, then the committed record:
#   SORALAB_GLUE_DIR=../shared/data/glue bash benchmarks/quality.sh
#   SEEDS="0 21 42" bash benchmarks/quality.sh          # fewer seeds
set -euo pipefail
OUT=${OUT:-runs/quality}
SEEDS=${SEEDS:-"0 21 42 81 100"}
METHODS=${METHODS:-"lora sora adalora bitfit"}
for seed in $SEEDS; do
  for spec in mrpc: rte: stsb: sst2:20000; do
    task=${spec%%:*}; n=${spec##*:}
    soralab sweep --tasks "$task" --methods $METHODS --seeds "$seed" --output-dir "$OUT" \
      ${n:+--set max_train_samples=$n}
    python benchmarks/quality_table.py "$OUT"   # the record so far, after every task
  done
done
