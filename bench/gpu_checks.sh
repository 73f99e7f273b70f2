#!/usr/bin/env bash
# The GPU measurements docs/BENCHMARKS.md waits for, as one script for a lent GPU machine:
# throughput and MFU of base and large (compiled and eager), base with the levers toward 50 % MFU,
# then a small `lrpath compare` if the time allows.
#
#   bash bench/gpu_checks.sh OUT_DIR DATA_DIR [SECONDS]
#
# DATA_DIR holds v1/..v4/ (`lrpath data gcide --out DATA_DIR --versions 4 --max-chars 3000000`).
# Each step is skipped once SECONDS (default 510) have passed, so what was measured comes back.
# The machine's image has torch and transformers but not pydantic: carry its wheels in .whl/.
set -uo pipefail
out=${1:?OUT_DIR}
data=${2:?DATA_DIR}
budget=${3:-510}
start=$SECONDS
export PYTHONUNBUFFERED=1
mkdir -p "$out"
log="$out/gpu_log.txt"

left() { echo $((budget - (SECONDS - start))); }
step() {  # step NAME MIN_SECONDS_NEEDED COMMAND...
    local name=$1 need=$2
    shift 2
    if (($(left) < need)); then
        echo "== skipped $name: $(left) s left, needs $need" | tee -a "$log"
        return
    fi
    echo "== $name ($(left) s left): $*" | tee -a "$log"
    local t0=$SECONDS
    timeout "$(left)" "$@" 2>&1 | tee -a "$log"
    echo "== $name took $((SECONDS - t0)) s" | tee -a "$log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee -a "$log"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' | tee -a "$log"

T="--seq-len 1024 --batch-size 32 --steps 30 --warmup 10"
step base-compiled 120 python3 bench/throughput.py --json --preset base --vocab 32000 $T
step base-eager 40 python3 bench/throughput.py --json --preset base --vocab 32000 $T --no-compile
step large-compiled 150 python3 bench/throughput.py --json --preset large --vocab 32000 $T
step large-eager 60 python3 bench/throughput.py --json --preset large --vocab 32000 $T --no-compile
# Levers toward 50 % MFU on base (DESIGN.md §4): head dim 128, bf16 weights, CUDA graphs, batch 64.
B="--preset base --vocab 32000 --seq-len 1024 --steps 30 --warmup 10"
step base-hd128-compiled 90 python3 bench/throughput.py --json $B --batch-size 32 --num-heads 6
step base-bf16w-compiled 90 python3 bench/throughput.py --json $B --batch-size 32 --param-dtype bf16
step base-hd128-bf16w-b64-compiled 100 python3 bench/throughput.py --json $B --batch-size 64 --num-heads 6 \
    --param-dtype bf16
step base-hd128-bf16w-cudagraphs 120 python3 bench/throughput.py --json $B --batch-size 32 --num-heads 6 \
    --param-dtype bf16 --compile-mode reduce-overhead
# Eager: a comparison trains ~30 segments in one process; compiling each would dominate at this size.
step compare-small 240 env TORCH_COMPILE_DISABLE=1 python3 -c \
    'import typer; from flows.cli_compare import compare; typer.run(compare)' \
    --data "$data" --out /tmp/compare-small --model small --versions 4 --json
for f in results.json results.txt ppl_per_version.png cost_vs_appl.png; do
    [ -f "/tmp/compare-small/$f" ] && cp "/tmp/compare-small/$f" "$out/compare_small_$f"
done
grep '^{"device"' "$log" > "$out/throughput.jsonl"
echo "== done in $((SECONDS - start)) s" | tee -a "$log"
