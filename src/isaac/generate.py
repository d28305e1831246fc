"""Generate responses to held-out TEST prompts with a trained generator.

The first `n_prompts` test rows in id order, so every run answers the same prompts. Causal LMs
are left-padded (generation continues from the right end of every row). Sampling is seeded once
before the first batch, so a fixed seed and batch size give the same generations.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd
import torch
from tqdm import tqdm

from isaac.generator import Generator, device, load_generator
from isaac.io import InputError, read_table, write_parquet


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
def generate(gen: Generator, prompts: list[str], max_new_tokens: int = 32, do_sample: bool = False,
             temperature: float = 1.0, top_p: float = 0.9, batch_size: int = 32, seed: int = 0,
             max_prompt_tokens: int = 64, progress: bool = False) -> list[str]:
    """One response per prompt, decoded without special tokens and stripped."""
    dev = device()
    model = gen.model.to(dev).eval()
    tok = gen.tokenizer
    eos = tok.convert_tokens_to_ids(gen.fmt.target_suffix) if gen.fmt.target_suffix else None
    eos = eos if eos is not None and eos != tok.unk_token_id else tok.eos_token_id
    torch.manual_seed(seed)
    out: list[str] = []
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="generate", disable=not progress):
        batch = {k: v.to(dev) for k, v in
                 encode_prompts(gen, prompts[start:start + batch_size], max_prompt_tokens).items()}
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                      pad_token_id=tok.pad_token_id, eos_token_id=eos)
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        ids = model.generate(**batch, **kwargs)
        if not gen.fmt.seq2seq:
            ids = ids[:, batch["input_ids"].shape[1]:]
        out += [t.strip() for t in tok.batch_decode(ids, skip_special_tokens=True)]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Generate responses to the test prompts.")
    p.add_argument("--model", required=True, help="model folder from isaac.train")
    p.add_argument("--corpus", required=True, help="corpus.parquet")
    p.add_argument("--generate", default="{}", help="JSON of the config's generate section")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="generations/{run}.parquet")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = json.loads(args.generate)
    table = select_test_prompts(args.corpus, cfg.get("n_prompts", 200))
    gen = load_generator(args.model)
    table["generation"] = generate(
        gen, table["prompt"].tolist(),
        max_new_tokens=cfg.get("max_new_tokens", 32), do_sample=cfg.get("do_sample", True),
        temperature=cfg.get("temperature", 1.0), top_p=cfg.get("top_p", 1.0),
        batch_size=cfg.get("batch_size", 32), seed=cfg.get("seed", 0), progress=True,
    )
    write_parquet(table, args.out)


if __name__ == "__main__":
    from isaac.cli import run

    run(main)
