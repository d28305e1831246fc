"""Generation throughput of a trained generator on one GPU: new tokens/s at several batch sizes.

Runs the generate stage's own decoding (isaac.generate.generate: length-sorted, left-padded
batches, KV cache, bfloat16 on a GPU that supports it) over the test prompts of a corpus with
the config's sampling settings, once per batch size after one untimed warm-up batch, and times
each whole call. New tokens are what each row generated up to and including its first end
token (not the padding after it); the padding share is that of the prompt batches.

    python bench/gpu_generate.py --model results/diasafety/models/isaac/tau1.0-m1-seed0 \
        --configfile config/diasafety.yaml config/diasafety-minilm.yaml \
            config/diasafety-smollm2.yaml

`--device cpu --limit 16 --dry-run` smoke-tests it without a GPU and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from gpu_train import merged_config  # noqa: E402
from isaac.generate import GenerateConfig, generate, generation_dtype  # noqa: E402
from isaac.io import read_table  # noqa: E402
from isaac.models import device, load_generator  # noqa: E402
from isaac.settings import from_dict, section_settings  # noqa: E402
from record import BENCHMARKS_JSON, record  # noqa: E402


def new_tokens(ids: torch.Tensor, eos: int) -> int:
    """Tokens the rows of `ids` (generated part only) hold up to and including their first eos."""
    hit = (ids == eos).int()
    return int(((hit.cumsum(1) - hit) == 0).sum())


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(gen, prompts: list[str], config: GenerateConfig, seed: int) -> dict:
    """Wall seconds of one generate call over `prompts`, its new tokens and prompt padding."""
    batches = []
    original = gen.model.generate

    def spy(*args, **kwargs):
        ids = original(*args, **kwargs)
        width = 1 if gen.fmt.seq2seq else kwargs["input_ids"].shape[1]  # decoder start / prompt
        batches.append((ids[:, width:], kwargs["attention_mask"], kwargs["eos_token_id"]))
        return ids

    gen.model.generate = spy
    try:
        sync()
        start = time.perf_counter()
        generate(gen, prompts, config, seed)
        sync()
        seconds = time.perf_counter() - start
    finally:
        del gen.model.generate  # the instance attribute; the model's own method shows again
    tokens = sum(new_tokens(ids, eos) for ids, _, eos in batches)
    padded = sum(int((mask == 0).sum()) for _, mask, _ in batches)
    return {
        "batch_size": config.batch_size,
        "batches": len(batches),
        "seconds": seconds,
        "new_tokens": tokens,
        "new_tokens_per_s": tokens / seconds,
        "prompt_padding_share": padded / sum(mask.numel() for _, mask, _ in batches),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model",
        default="results/diasafety/models/isaac/tau1.0-m1-seed0",
        help="a model folder written by the train stage",
    )
    p.add_argument("--prompts", default="results/diasafety/prompts.parquet")
    p.add_argument("--configfile", nargs="+", default=[], help="config layers, as for Snakemake")
    p.add_argument(
        "--batch-sizes",
        "--batch-size",
        type=int,
        nargs="+",
        help="default: the config's generate.batch_size and 32 64 128 256",
    )
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--limit", type=int, help="only the first N prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (--device cpu)")
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "gpu-generate.json"))
    p.add_argument(
        "--benchmarks-json", default=str(BENCHMARKS_JSON), help="where the summary keys are merged"
    )
    p.add_argument("--dry-run", action="store_true", help="print the rows, write no file")
    args = p.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before anything asks torch for a GPU
    elif not torch.cuda.is_available():
        p.error("no CUDA device (--device cpu runs a smoke test)")
    torch.set_num_threads(args.threads)

    config = merged_config(args.configfile)
    generate_config = from_dict(GenerateConfig, section_settings(config["generate"], "generate"))
    generate_config = replace(generate_config, max_new_tokens=args.max_new_tokens)
    batch_sizes = args.batch_sizes or sorted({generate_config.batch_size, 32, 64, 128, 256})
    prompts = read_table(args.prompts, ["prompt"])["prompt"].tolist()[: args.limit]
    gen = load_generator(args.model)
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    warmup = replace(generate_config, batch_size=min(batch_sizes))
    generate(gen, prompts[: warmup.batch_size], warmup, args.seed)
    rows = []
    for batch_size in batch_sizes:
        row = measure(gen, prompts, replace(generate_config, batch_size=batch_size), args.seed)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.dry_run:
        return
    result = {
        "device": str(device()),
        "gpu": name,
        "dtype": str(generation_dtype(device())).removeprefix("torch."),
        "generator": gen.fmt.kind,
        "model": args.model,
        "prompts": len(prompts),
        "decoding": asdict(replace(generate_config, batch_size=None)),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    command = "bash bench/gpu.sh"
    path = Path(args.benchmarks_json)
    best = max(rows, key=lambda r: r["new_tokens_per_s"])
    measured = [("gpu_generate_best", best)]
    measured += [("gpu_generate", r) for r in rows if r["batch_size"] == generate_config.batch_size]
    for key, row in measured:
        record(
            f"{key}_tokens_per_s",
            row["new_tokens_per_s"],
            "new tokens/s",
            command,
            batch_size=row["batch_size"],
            seconds=row["seconds"],
            prompts=len(prompts),
            max_new_tokens=args.max_new_tokens,
            generator=gen.fmt.kind,
            gpu=name,
            path=path,
        )


if __name__ == "__main__":
    main()
