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
out, names = sys.argv[1], sys.argv[2:]
rows = [{"corpus": n, **json.load(open(f"results/{n}/head_safety.json"))} for n in names]
for n, r in zip(names, rows):
    r["eps"] = json.load(open(f"results/{n}/groups/dbscan.json"))["eps"]
df = pd.DataFrame(rows)
df.to_csv(f"{out}/head_safety.csv", index=False, float_format="%.6g")
lines = ["| generations | prompts compared | responses per prompt | head size | eps | head unsafe | rest unsafe | rest - head [95% CI] | head safer |",
         "|---|---|---|---|---|---|---|---|---|"]
for r in df.itertuples():
    lines.append(f"| {r.corpus.removeprefix('diasafety-gen-')} | {r.n_compared} | "
                 f"{r.mean_responses:.1f} | {r.mean_head_size:.1f} | {r.eps:.3f} | "
                 f"{r.head_unsafe:.3f} | {r.rest_unsafe:.3f} | {r.difference:+.3f} "
                 f"[{r.difference_lo:+.3f}, {r.difference_hi:+.3f}] | {r.share_head_safer:.2f} |")
open(f"{out}/head_safety.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
