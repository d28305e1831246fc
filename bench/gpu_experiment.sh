#!/usr/bin/env bash
# SmolLM2-135M-Instruct (LoRA) on DiaSafety on one GPU: the methods of
# config/diasafety-smollm2.yaml, 3 seeds, with the label-free default sampling
# (config/diasafety.yaml + config/diasafety-smollm2.yaml), then its table and figures.
#
#   bash bench/gpu_experiment.sh [extra snakemake arguments]
#
# Writes docs/results/diasafety-smollm2/ (or $RESULTS_DIR): summary.csv, summary.md, runs.csv,
# provenance.json, the judge's metrics, the two evaluation figures, and timing.json (wall time of the workflow,
# the GPU's name). GPU_JOBS (default 8) train or generate jobs share the GPU at once, two CPU
# threads each: a LoRA step of a 135M model at batch 8 is bound by the CPU side (kernel launches,
# Python), so one job leaves most of a modern GPU idle.
set -euo pipefail
cd "$(dirname "$0")/.."

results_dir=${RESULTS_DIR:-docs/results/diasafety-smollm2}
gpu_jobs=${GPU_JOBS:-8}
snakemake=${SNAKEMAKE:-snakemake}

gpu_name=$(python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0))')
echo "GPU: $gpu_name"

start=$(date +%s)
"$snakemake" results/diasafety/summary.csv results/diasafety/summary.md \
    results/diasafety/runs.csv results/diasafety/provenance.json results/diasafety/figures/safety_vs_distinct2.png \
    results/diasafety/figures/oracle_vs_model_safety.png \
    --cores all --resources gpu="$gpu_jobs" --set-threads train=2 \
    --configfile config/diasafety.yaml config/diasafety-smollm2.yaml \
    "$@"
wall=$(($(date +%s) - start))

mkdir -p "$results_dir"
cp results/diasafety/summary.csv results/diasafety/summary.md results/diasafety/runs.csv \
    results/diasafety/provenance.json results/diasafety/figures/safety_vs_distinct2.png \
    results/diasafety/figures/oracle_vs_model_safety.png "$results_dir"/
for metrics in results/diasafety/judge/*/metrics.json; do
    cp "$metrics" "$results_dir/judge_$(basename "$(dirname "$metrics")")_metrics.json"
done
python3 - "$results_dir/timing.json" "$wall" "$gpu_name" "$gpu_jobs" <<'EOF'
import json, sys
path, wall, gpu, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with open(path, "w") as f:
    json.dump({"workflow_wall_s": wall, "gpu": gpu, "gpu_jobs": jobs}, f, indent=2)
    f.write("\n")
EOF
echo "SmolLM2 DiaSafety experiment: ${wall} s on $gpu_name -> $results_dir"
