#!/usr/bin/env bash
# Tempering: the same sweep (config/tempering.yaml) trained in S stages, each stage on a fresh
# draw of targets and starting from the previous stage's model, for each S given.
#
#   bash bench/tempering.sh [S ...]        (default: 1 3; the demo corpus)
#
# Each S is its own corpus, results/demo-stages-{S}/. Writes docs/results/tempering-demo/:
# tempering.csv and tempering.md (one row per S and method) and each S's summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(1 3)
python=${PYTHON:-.venv/bin/python}
out=docs/results/tempering-demo
layers=$(mktemp -d)
trap 'rm -rf "$layers"' EXIT
mkdir -p "$out"

for s in "${stages[@]}"; do
    name="demo-stages-$s"
    printf 'corpus:\n  name: "%s"\ntrain:\n  stages: %s\n' "$name" "$s" > "$layers/$s.yaml"
    "$python" -m snakemake "results/$name/summary.csv" "results/$name/summary.md" \
        --cores "${CORES:-2}" --configfile config/config.yaml config/tempering.yaml "$layers/$s.yaml"
    cp "results/$name/summary.md" "$out/summary-S$s.md"
done

"$python" - "$out" "${stages[@]}" <<'PY'
import sys
import pandas as pd
sys.path.insert(0, "bench")
from tables import write_table
out, stages = sys.argv[1], sys.argv[2:]
table = pd.concat([pd.read_csv(f"results/demo-stages-{s}/summary.csv").assign(stages=int(s))
                   for s in stages])
print(write_table(table[["stages", "method", "safety_score", "safety_lo", "safety_hi",
                         "delta_raw", "delta_raw_lo", "delta_raw_hi", "distinct_2",
                         "ppl_safe"]], {
    "S": "{stages}", "method": "{method}",
    "safety [95% CI]": "{safety_score:.3f} [{safety_lo:.3f}, {safety_hi:.3f}]",
    "Δ raw [95% CI]": "{delta_raw:+.3f} [{delta_raw_lo:+.3f}, {delta_raw_hi:+.3f}]",
    "distinct-2": "{distinct_2:.3f}", "ppl (safe refs)": "{ppl_safe:.1f}",
}, f"{out}/tempering"))
PY
