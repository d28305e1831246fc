"""Generate one response per test prompt (prompts.parquet) with a trained generator.

Prompts are answered in batches of `generate.batch_size` prompts, taken in order of their token
length (a stable sort, so a batch holds similar lengths and little left padding); the responses
come back in the prompts table's order. Decoding randomness comes from the run's seed: each batch
is seeded from (seed, its first position in the sorted order). The sort depends only on the
prompts and the generator's tokenizer, so every method of a corpus and generator answers a given
prompt in the same batch with the same random stream, whatever earlier batches did (paired
comparisons between methods), and seeds vary the decoding as well as the training.
Decoding keeps the key/value cache; on a CUDA GPU with bfloat16 support the model generates in
bfloat16, elsewhere in float32.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from isaac.cli import run
from isaac.io import InputError, read_table, write_parquet
from isaac.lm import prompt_ids
from isaac.models import Generator, device, load_generator
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.generate")


@dataclass(frozen=True)
class GenerateConfig:
    """The generate section: the decoding settings (which prompts: the prompts section)."""

    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    batch_size: int


def pad_batch(gen: Generator, rows: list[list[int]]) -> dict:
    """Prompt ids (isaac.lm.prompt_ids) as one batch: left-padded for causal LMs (generation
    continues from the right end of every row), right-padded for seq2seq."""
    pad = gen.tokenizer.pad_token_id
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        cols = slice(0, len(r)) if gen.fmt.seq2seq else slice(n - len(r), n)
        ids[i, cols] = torch.tensor(r)
        mask[i, cols] = 1
    return {"input_ids": ids, "attention_mask": mask}


def length_order(rows: Sequence[Sequence[int]]) -> list[int]:
    """Positions of the prompt id `rows`, shortest first; equal lengths keep their order."""
    return sorted(range(len(rows)), key=lambda i: len(rows[i]))


def batch_seed(seed: int, start: int) -> int:
    """The torch seed of the batch that starts at position `start` of the length order."""
    return int(np.random.SeedSequence([int(seed), int(start)]).generate_state(1)[0])


def generation_dtype(dev: torch.device) -> torch.dtype:
    """bfloat16 on a CUDA GPU that supports it (half the memory traffic per decoding step),
    float32 elsewhere (a CPU computes bfloat16 slowly and would change the results)."""
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@torch.no_grad()
def generate(
    gen: Generator, prompts: list[str], config: GenerateConfig, seed: int, progress: bool = False
) -> list[str]:
    """One response per prompt, in the order of `prompts`, decoded without special tokens and
    stripped. Moves (and on a bfloat16 GPU casts) `gen.model` in place."""
    dev = device()
    model = gen.model.to(dev, dtype=generation_dtype(dev)).eval()
    tok = gen.tokenizer
    eos = tok.convert_tokens_to_ids(gen.fmt.target_suffix) if gen.fmt.target_suffix else None
    eos = eos if eos is not None and eos != tok.unk_token_id else tok.eos_token_id
    kwargs = dict(
        max_new_tokens=config.max_new_tokens,
        do_sample=config.do_sample,
        use_cache=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=eos,
    )
    if config.do_sample:
        kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    rows = [prompt_ids(gen, p) for p in prompts]
    order = length_order(rows)
    out = [""] * len(prompts)
    size = config.batch_size
    for start in tqdm(range(0, len(order), size), desc="generate", disable=not progress):
        positions = order[start : start + size]
        torch.manual_seed(batch_seed(seed, start))
        batch = {k: v.to(dev) for k, v in pad_batch(gen, [rows[i] for i in positions]).items()}
        ids = model.generate(**batch, **kwargs)
        if not gen.fmt.seq2seq:
            ids = ids[:, batch["input_ids"].shape[1] :]
        for i, text in zip(positions, tok.batch_decode(ids, skip_special_tokens=True)):
            out[i] = text.strip()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Generate responses to the test prompts.")
    p.add_argument("--model", required=True, help="model folder from isaac.train")
    p.add_argument("--prompts", required=True, help="prompts.parquet")
    p.add_argument("--seed", type=int, required=True, help="the run's seed (decoding)")
    add_config_argument(p, GenerateConfig)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="generations/{run}.parquet")
    args = p.parse_args(argv)
    config = parse(GenerateConfig, args.config)
    torch.set_num_threads(args.threads)
    table = read_table(args.prompts, ["id", "prompt", "seen"])
    if table.empty:
        raise InputError(f"{args.prompts}: no prompts")
    gen = load_generator(args.model)
    table["generation"] = generate(gen, table["prompt"].tolist(), config, args.seed, progress=True)
    write_parquet(table, args.out)
    log.info("%d generations -> %s", len(table), args.out)


if __name__ == "__main__":
    run(main)
