"""Benchmark of the cross-minilm judge's fine-tuning (not a test): DiaSafety train rows per
second with the schema's judge.cross_encoder defaults, and the time one epoch over the whole
labelled train split takes at that rate. It chose those defaults (the judge job should fit
DiaSafety in about 15 minutes on 2 CPU cores).

    .venv/bin/python bench/judge_cross_encoder.py --diasafety ../shared/data/diasafety

Fine-tunes on the first --rows labelled train rows (by id), one thread (the judge rule's
`threads`), and writes the key judge_cross_encoder_train_rows_per_s to docs/benchmarks.json,
with CPU seconds beside wall seconds: on a machine shared with other jobs the CPU time is the
steadier measure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "src"))
from isaac.ingest import read_diasafety  # noqa: E402
from isaac.judge import CrossEncoderConfig, fit_judge, labelled  # noqa: E402
from isaac.settings import from_dict  # noqa: E402
from record import record  # noqa: E402


def schema_cross_encoder() -> CrossEncoderConfig:
    """judge.cross_encoder as config/schema.yaml fills it by default."""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    props = schema["properties"]["judge"]["properties"]["cross_encoder"]["properties"]
    return from_dict(CrossEncoderConfig, {k: v["default"] for k, v in props.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--diasafety", type=Path, required=True, help="folder with DiaSafety's train/val/test.json"
    )
    parser.add_argument("--rows", type=int, default=384)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = schema_cross_encoder()
    train = labelled(read_diasafety(args.diasafety), "train").sort_values("id", kind="stable")
    rows = train.head(args.rows)
    cpu, wall = time.process_time(), time.perf_counter()
    fit_judge(
        rows["prompt"].astype(str),
        rows["response"].astype(str),
        (rows["label"] == "unsafe").to_numpy(),
        "cross-minilm",
        settings,
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    row_passes = len(rows) * settings.epochs
    per_cpu_s = row_passes / cpu
    minutes = len(train) * settings.epochs / per_cpu_s / 60
    print(
        f"{row_passes} row passes: {cpu:.1f} CPU s, {wall:.1f} wall s; {per_cpu_s:.1f} rows per "
        f"CPU second; all {len(train)} train rows x {settings.epochs} epoch(s): {minutes:.1f} min"
    )
    if not args.no_record:
        record(
            "judge_cross_encoder_train_rows_per_s",
            per_cpu_s,
            "train rows per CPU second (1 thread)",
            f"python bench/judge_cross_encoder.py --diasafety {args.diasafety} --rows {args.rows}",
            rows=len(rows),
            cpu_s=round(cpu, 2),
            wall_s=round(wall, 2),
            settings=dataclasses.asdict(settings),
            train_rows=len(train),
            projected_train_minutes=round(minutes, 1),
            load_average=round(os.getloadavg()[0], 2),
        )


if __name__ == "__main__":
    main()
