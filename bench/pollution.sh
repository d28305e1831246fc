#!/usr/bin/env bash
# Pollution protocol: for each rate, pollute the train responses, sample, train, generate, score,
# then tabulate the polluted share of targets and of generations per method.
#
#   bash bench/pollution.sh demo|diasafety [rate ...]     (default rates: 0.01 0.04 0.10)
#
# Each rate is its own corpus, results/{corpus}-polluted-{rate}/. Writes
# docs/results/pollution-{corpus}/: pollution.csv and pollution.md (one row per rate and run)
# and each rate's summary.md. CORES (default 2) is passed to Snakemake.
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=${1:?usage: bash bench/pollution.sh demo|diasafety [rate ...]}
shift
case "$corpus" in
    demo) base=(config/config.yaml) ;;
    diasafety) base=(config/diasafety.yaml config/diasafety-minilm.yaml) ;;
    *) echo "bench/pollution.sh: unknown corpus '$corpus' (demo or diasafety)" >&2; exit 2 ;;
esac
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(0.01 0.04 0.10)
python=${PYTHON:-.venv/bin/python}
out="docs/results/pollution-$corpus"
layers=$(mktemp -d)
trap 'rm -rf "$layers"' EXIT
mkdir -p "$out"

for rate in "${rates[@]}"; do
    name="$corpus-polluted-$rate"
    printf 'corpus:\n  name: "%s"\npollute:\n  rate: %s\n  seed: 0\n' "$name" "$rate" \
        > "$layers/$rate.yaml"
    "$python" -m snakemake "results/$name/runs.csv" "results/$name/summary.md" \
        --cores "${CORES:-2}" --configfile "${base[@]}" config/pollution.yaml "$layers/$rate.yaml"
    cp "results/$name/summary.md" "$out/summary-$rate.md"
done

"$python" - "$out" "$corpus" "${rates[@]}" <<'PY'
import sys
import pandas as pd
sys.path.insert(0, "bench")
from tables import write_table
out, corpus, rates = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = pd.concat([pd.read_csv(f"results/{corpus}-polluted-{rate}/runs.csv").assign(rate=float(rate))
                  for rate in rates])
print(write_table(runs[["rate", "method", "tau", "seed", "polluted_share",
                        "polluted_generation_share", "safety_score", "oracle_safe_rate",
                        "distinct_2"]], {
    "rate": "{rate:g}", "method": "{method}", "tau": "{tau:g}",
    "polluted targets": "{polluted_share:.4f}",
    "polluted generations": "{polluted_generation_share:.4f}",
    "safety": "{safety_score:.3f}", "oracle": "{oracle_safe_rate:.3f}",
    "distinct-2": "{distinct_2:.3f}",
}, f"{out}/pollution"))
PY
