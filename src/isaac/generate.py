"""Generate responses to held-out TEST prompts with a trained generator.

The first `n_prompts` test rows in id order, so every run answers the same prompts. Causal LMs
are left-padded (generation continues from the right end of every row). Sampling is seeded once
before the first batch, so a fixed seed and batch size give the same generations.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm import tqdm

from isaac.cli import run
from isaac.io import InputError, read_table, write_parquet
from isaac.models import Generator, device, load_generator
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.generate")
MAX_PROMPT_TOKENS = 64  # a prompt keeps its last tokens, as in training


@dataclass(frozen=True)
class GenerateConfig:
    """The generate slice."""

    n_prompts: int
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    batch_size: int
    seed: int


def select_test_prompts(corpus_path, n_prompts: int) -> pd.DataFrame:
    """The first n TEST rows sorted by id: id, prompt, reference."""
    corpus = read_table(corpus_path, ["id", "split", "prompt", "response"])
    test = corpus[corpus["split"] == "test"].sort_values("id", kind="stable").head(n_prompts)
    if test.empty:
        raise InputError(f"{corpus_path}: no rows with split 'test' to generate for")
    return pd.DataFrame({
        "id": test["id"].astype(str).to_numpy(),
        "prompt": test["prompt"].astype(str).to_numpy(),
        "reference": test["response"].astype(str).to_numpy(),
    })


def encode_prompts(gen: Generator, prompts: list[str], max_prompt_tokens: int) -> dict:
    """Left-padded batch for causal LMs (prompt keeps its last tokens); right-padded for seq2seq."""
    tok, fmt = gen.tokenizer, gen.fmt
    if fmt.seq2seq:
        return tok(prompts, padding=True, truncation=True, max_length=max_prompt_tokens,
                   return_tensors="pt")
    rows = [tok(fmt.prompt_text(p), add_special_tokens=False)["input_ids"][-max_prompt_tokens:]
            for p in prompts]
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, n - len(r):] = torch.tensor(r)
        mask[i, n - len(r):] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def generate(
    gen: Generator, prompts: list[str], config: GenerateConfig, progress: bool = False
) -> list[str]:
    """One response per prompt, decoded without special tokens and stripped."""
    dev = device()
    model = gen.model.to(dev).eval()
    tok = gen.tokenizer
    eos = tok.convert_tokens_to_ids(gen.fmt.target_suffix) if gen.fmt.target_suffix else None
    eos = eos if eos is not None and eos != tok.unk_token_id else tok.eos_token_id
    torch.manual_seed(config.seed)
    out: list[str] = []
    size = config.batch_size
    for start in tqdm(range(0, len(prompts), size), desc="generate", disable=not progress):
        batch = {k: v.to(dev) for k, v in
                 encode_prompts(gen, prompts[start:start + size], MAX_PROMPT_TOKENS).items()}
        kwargs = dict(max_new_tokens=config.max_new_tokens, do_sample=config.do_sample,
                      pad_token_id=tok.pad_token_id, eos_token_id=eos)
        if config.do_sample:
            kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        ids = model.generate(**batch, **kwargs)
        if not gen.fmt.seq2seq:
            ids = ids[:, batch["input_ids"].shape[1]:]
        out += [t.strip() for t in tok.batch_decode(ids, skip_special_tokens=True)]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Generate responses to the test prompts.")
    p.add_argument("--model", required=True, help="model folder from isaac.train")
    p.add_argument("--corpus", required=True, help="corpus.parquet")
    add_config_argument(p, GenerateConfig)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="generations/{run}.parquet")
    args = p.parse_args(argv)
    config = parse(GenerateConfig, args.config)
    torch.set_num_threads(args.threads)
    table = select_test_prompts(args.corpus, config.n_prompts)
    gen = load_generator(args.model)
    table["generation"] = generate(gen, table["prompt"].tolist(), config, progress=True)
    write_parquet(table, args.out)
    log.info("%d generations -> %s", len(table), args.out)


if __name__ == "__main__":
    run(main)
