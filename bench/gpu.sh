#!/usr/bin/env bash
# Training throughput of SmolLM2-135M-Instruct (LoRA) on one GPU: tokens/s and model FLOPs
# utilisation at the experiment's batch size and larger ones, in about two minutes; then the
# generation throughput (new tokens/s) of one trained model at several batch sizes.
#
#   bash bench/gpu.sh [extra snakemake arguments]
#
# Makes the de-quantised base, one isaac targets file and its model of the SmolLM2 experiment
# (bench/gpu_experiment.sh's config files) if they are missing, then runs bench/gpu_train.py,
# which writes docs/results/gpu-train.json (and its table, docs/benchmarks/gpu_train.csv), and
# bench/gpu_generate.py, which writes docs/results/gpu-generate.json (with the generator kind of
# the model folder it found); both merge their keys into docs/benchmarks.json.
set -euo pipefail
cd "$(dirname "$0")/.."

snakemake=${SNAKEMAKE:-snakemake}
python=${PYTHON:-python3}
layers=(config/diasafety.yaml config/diasafety-minilm.yaml config/diasafety-smollm2.yaml)
targets=results/diasafety/targets/isaac/tau1.0-m1-seed0.parquet
model=results/diasafety/models/isaac/tau1.0-m1-seed0
prompts=results/diasafety/prompts.parquet

"$python" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"'
missing=()
for path in results/diasafety/generator_base "$targets" "$model" "$prompts"; do
    [ -e "$path" ] || missing+=("$path")
done
[ ${#missing[@]} -eq 0 ] || "$snakemake" "${missing[@]}" --cores all --configfile "${layers[@]}" "$@"
"$python" bench/gpu_train.py --base results/diasafety/generator_base --targets "$targets" \
    --configfile "${layers[@]}"
"$python" bench/gpu_generate.py --model "$model" --prompts "$prompts" \
    --configfile "${layers[@]}"
