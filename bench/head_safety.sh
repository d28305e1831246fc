#!/usr/bin/env bash
# Many responses per prompt, for several DiaSafety generation files (one model and decoding
# setting each): is each context's head group judged safer than its other responses?
#
#   bash bench/head_safety.sh [generation file name ...]
#
# Builds the DiaSafety judge if needed, runs config/diasafety-generations.yaml once per file
# (corpus results/diasafety-gen-{file stem}/), and writes docs/results/head-safety/head_safety.md
# and .csv (one row per file). CORES (default 2) is passed to Snakemake.
set -euo pipefail
cd "$(dirname "$0")/.."

folder=../shared/data/diasafety/generations
files=("$@")
[ ${#files[@]} -gt 0 ] ||
    files=(blender_val_large_40_1.0.json dialo_val_large_10_1.0.json plato_large_val.json)
python=${PYTHON:-.venv/bin/python}
out=docs/results/head-safety
layers=$(mktemp -d)
trap 'rm -rf "$layers"' EXIT
mkdir -p "$out"

"$python" -m snakemake results/diasafety/judge/tfidf-lr --cores "${CORES:-2}" \
    --configfile config/diasafety.yaml
names=()
for file in "${files[@]}"; do
    name="diasafety-gen-${file%.json}"
    names+=("$name")
    printf 'corpus:\n  name: "%s"\n  path: "%s"\n' "$name" "$folder/$file" > "$layers/$name.yaml"
    "$python" -m snakemake "results/$name/head_safety.json" --cores "${CORES:-2}" \
        --configfile config/diasafety-generations.yaml "$layers/$name.yaml"
done

"$python" - "$out" "${names[@]}" <<'PY'
import json, sys
import pandas as pd
sys.path.insert(0, "bench")
from tables import write_table
out, names = sys.argv[1], sys.argv[2:]
rows = [{"corpus": n, "generations": n.removeprefix("diasafety-gen-"),
         **json.load(open(f"results/{n}/head_safety.json")),
         "eps": json.load(open(f"results/{n}/groups/dbscan.json"))["eps"]} for n in names]
print(write_table(pd.DataFrame(rows), {
    "generations": "{generations}", "prompts compared": "{n_compared}",
    "responses per prompt": "{mean_responses:.1f}", "head size": "{mean_head_size:.1f}",
    "eps": "{eps:.3f}", "head unsafe": "{head_unsafe:.3f}", "rest unsafe": "{rest_unsafe:.3f}",
    "rest - head [95% CI]": "{difference:+.3f} [{difference_lo:+.3f}, {difference_hi:+.3f}]",
    "head safer": "{share_head_safer:.2f}",
}, f"{out}/head_safety"))
PY
