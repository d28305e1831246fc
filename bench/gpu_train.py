"""Training throughput of the SmolLM2 generator on one GPU: tokens/s and model FLOPs utilisation.

Runs the train stage's engine (isaac.train.train: transformers.Trainer, LoRA on the de-quantised
SmolLM2 base, bf16 mixed precision where the GPU has it, as `train.precision: auto` does) on
real targets for a few steps at several batch sizes, and times each optimiser step after a
warm-up. Tokens are the non-padding tokens of a step's batch (what the step learns from, as the
train log counts them). Model FLOPs per token are 4 per frozen parameter (forward 2, backward
through the weights 2) and 6 per trained one (plus its weight gradient); attention scores are
left out (a few percent at these lengths). Utilisation is given against the GPU's dense peak
of the precision the run used (`mfu`), and against both peaks. The batch-8 key's baseline is
the hand-written fp32 loop this engine replaced: 2,720.7 tokens/s on one H200.

    python bench/gpu_train.py --base results/diasafety/generator_base \
        --targets results/diasafety/targets/isaac/tau1.0-m1-seed0.parquet \
        --configfile config/diasafety.yaml config/diasafety-minilm.yaml \
            config/diasafety-smollm2.yaml

Writes docs/results/gpu-train.json, the keys `gpu_train_*` of docs/benchmarks.json and the table
docs/benchmarks/gpu_train.csv (bench/tables.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from isaac.lm import build_examples  # noqa: E402
from isaac.models import GeneratorConfig, build_generator, device  # noqa: E402
from isaac.settings import from_dict, section_settings  # noqa: E402
from isaac.train import TrainConfig, read_targets, train  # noqa: E402
from record import BENCHMARKS_JSON, record  # noqa: E402
from tables import write_tables  # noqa: E402

# The hand-written fp32 training loop before the Trainer engine, batch 8, one H200 (tokens/s).
HAND_WRITTEN_LOOP_TOKENS_PER_S = 2720.683142217737
# Dense peaks in TFLOP/s (vendor data sheets, SXM parts): fp32 without tensor cores, bf16 dense.
PEAKS = {"H200": (67.0, 989.4), "H100": (67.0, 989.4), "A100": (19.5, 312.0)}


def merged_config(configfiles: list[str]) -> dict:
    """The layers (the demo without any) on the schema's defaults, as the workflow sees them."""
    from snakemake.utils import update_config, validate

    config = {}
    for path in configfiles or [ROOT / "config" / "demo.yaml"]:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    validate(config, str(ROOT / "config" / "schema.yaml"))
    return config


def measure(
    generator: GeneratorConfig,
    train_config: TrainConfig,
    base: str,
    prompts,
    targets,
    batch_size: int,
    steps: int,
    warmup: int,
    seed: int,
) -> dict:
    """Tokens/s and FLOP/s of `steps` timed steps after `warmup` untimed ones."""
    cfg = replace(
        train_config, batch_size=batch_size, max_steps=warmup + steps, checkpoint_every=10**9
    )
    gen = build_generator(generator, None, seed, base)
    examples = build_examples(gen, prompts, targets, generator.max_length)
    trainable = sum(p.numel() for p in gen.model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in gen.model.parameters() if not p.requires_grad)
    stamps = []

    def on_step(_step):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as checkpoints:
        history = train(gen, examples, cfg, seed, checkpoints, on_step=on_step)
    seconds = [b - a for a, b in zip(stamps[warmup - 1 :], stamps[warmup:])]
    seen = [0] + [r["tokens"] for r in history]  # non-padding tokens, cumulative
    tokens = [b - a for a, b in zip(seen[warmup:], seen[warmup + 1 :])]
    tokens_per_s = sum(tokens) / sum(seconds)
    flops_per_token = 4 * frozen + 6 * trainable
    return {
        "batch_size": batch_size,
        "steps_timed": steps,
        "median_step_s": statistics.median(seconds),
        "tokens_per_step": sum(tokens) / len(tokens),
        "tokens_per_s": tokens_per_s,
        "model_tflops_per_s": tokens_per_s * flops_per_token / 1e12,
        "frozen_parameters": frozen,
        "trainable_parameters": trainable,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the generator_base folder")
    p.add_argument("--targets", required=True, help="a targets parquet to train on")
    p.add_argument("--configfile", nargs="+", default=[], help="config layers, as for Snakemake")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "gpu-train.json"))
    p.add_argument(
        "--benchmarks-json", default=str(BENCHMARKS_JSON), help="where the summary keys are merged"
    )
    args = p.parse_args()

    config = merged_config(args.configfile)
    generator = from_dict(GeneratorConfig, section_settings(config["generator"], "generator"))
    train_config = from_dict(TrainConfig, section_settings(config["train"], "train"))
    prompts, targets = read_targets(args.targets)
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    peak_fp32, peak_bf16 = next((v for k, v in PEAKS.items() if k in name), (None, None))
    rows = []
    for batch_size in args.batch_sizes:
        row = measure(
            generator,
            train_config,
            args.base,
            prompts,
            targets,
            batch_size,
            args.steps,
            args.warmup,
            args.seed,
        )
        row["mfu_fp32"] = row["model_tflops_per_s"] / peak_fp32 if peak_fp32 else None
        row["mfu_bf16"] = row["model_tflops_per_s"] / peak_bf16 if peak_bf16 else None
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "device": str(device()),
        "gpu": name,
        "peak_tflops_fp32": peak_fp32,
        "peak_tflops_bf16": peak_bf16,
        "max_length": generator.max_length,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    command = "bash bench/gpu.sh"
    path = Path(args.benchmarks_json)
    pipeline = next((r for r in rows if r["batch_size"] == train_config.batch_size), rows[0])
    best = max(rows, key=lambda r: r["tokens_per_s"])
    precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    for key, row in (("gpu_train", pipeline), ("gpu_train_best", best)):
        context = {"batch_size": row["batch_size"], "gpu": name, "precision": precision}
        baseline = HAND_WRITTEN_LOOP_TOKENS_PER_S if row["batch_size"] == 8 else None
        record(
            f"{key}_tokens_per_s",
            row["tokens_per_s"],
            "tokens/s",
            command,
            baseline=baseline,
            path=path,
            **context,
        )
        record(
            f"{key}_mfu",
            row[f"mfu_{precision}"],
            f"fraction of the dense {precision} peak",
            command,
            path=path,
            mfu_fp32=row["mfu_fp32"],
            mfu_bf16=row["mfu_bf16"],
            **context,
        )
    write_tables()


if __name__ == "__main__":
    main()
