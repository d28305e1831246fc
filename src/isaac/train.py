"""Fine-tune a generator on (prompt -> target) pairs with resumable checkpoints.

Loss is the token cross-entropy over TARGET tokens only: prompt and padding positions carry label
-100. With m targets per prompt each target is its own example (the summed loss of METHOD.md §3).
Batches come from length buckets whose order is a pure function of (seed, epoch), so a run that
resumes from a checkpoint at step s sees exactly the batches an uninterrupted run sees after s.

Checkpoints live in a folder beside the model output (not inside it), so they survive Snakemake's
removal of an incomplete output: re-running after a kill resumes from the last checkpoint.
They hold tensors only (safetensors for weights, ``torch.save`` of plain state dicts loaded with
``weights_only=True``) plus JSON metadata; no pickled objects.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from isaac.generator import Generator, build_generator, device, save_generator
from isaac.io import InputError, read_table

log = logging.getLogger(__name__)
IGNORE = -100
LOG_FILE = "train_log.jsonl"


@dataclass
class TrainConfig:
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    max_length: int = 96
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    bucket_batches: int = 50
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict, seed: int = 0) -> TrainConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "seed": seed})


# ---------------------------------------------------------------- examples


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    decoder: bool = False  # seq2seq: labels are the decoder targets, not aligned with input_ids


def encode_pair(gen: Generator, prompt: str, target: str, max_length: int) -> Example:
    """prompt + separator + target (+ eos); the prompt keeps its LAST tokens when too long."""
    tok, fmt = gen.tokenizer, gen.fmt
    if fmt.seq2seq:
        src = tok(prompt, truncation=True, max_length=max_length)["input_ids"]
        tgt = tok(text_target=target, truncation=True, max_length=max_length)["input_ids"]
        if tok.eos_token_id is not None and (not tgt or tgt[-1] != tok.eos_token_id):
            tgt = tgt[: max_length - 1] + [tok.eos_token_id]  # tokenizers without a post-processor
        return Example(src, tgt, decoder=True)
    p_ids = tok(fmt.prompt_text(prompt), add_special_tokens=False)["input_ids"]
    t_ids = tok(fmt.target_text(target), add_special_tokens=False)["input_ids"]
    p_ids = p_ids[-max(1, max_length // 2):] if len(p_ids) + len(t_ids) > max_length else p_ids
    t_ids = t_ids[: max_length - len(p_ids)]
    return Example(p_ids + t_ids, [IGNORE] * len(p_ids) + t_ids)


def build_examples(gen: Generator, prompts, targets, max_length: int) -> list[Example]:
    """One example per (prompt, target); targets[i] is the list of m targets for prompts[i]."""
    return [
        encode_pair(gen, str(p), str(t), max_length)
        for p, ts in zip(prompts, targets)
        for t in ts
    ]


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example; padded label positions are -100."""
    n = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), n), dtype=torch.long)
    if examples[0].decoder:
        nl = max(len(e.labels) for e in examples)
        labels = torch.full((len(examples), nl), IGNORE, dtype=torch.long)
    else:
        labels = torch.full((len(examples), n), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, : len(e.input_ids)] = 1
        labels[i, : len(e.labels)] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def token_nll(model, batch: dict[str, torch.Tensor], seq2seq: bool = False) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the labelled tokens, and how many there are."""
    labels = batch["labels"]
    if seq2seq:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       labels=labels).logits
        target = labels
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits, target = logits[:, :-1], labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1),
        ignore_index=IGNORE, reduction="sum",
    )
    return nll, int((target != IGNORE).sum())


def bucket_order(lengths, batch_size: int, seed: int, epoch: int, bucket_batches: int = 50):
    """Batches of similar length (less padding) in an order fixed by (seed, epoch).

    Shuffle, sort by length within chunks of `bucket_batches` batches, cut into batches, then
    shuffle the batches.
    """
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    chunk = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def linear_schedule(optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------- checkpoints


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(folder: Path, step: int, epoch: int, model, optimizer, scheduler,
                    fingerprint: str) -> Path:
    """Write step-{step}/ atomically (temp folder + rename), then drop older checkpoints."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}"
    tmp = folder / f".step-{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file({n: p.detach().cpu().contiguous() for n, p in _trainable(model).items()},
              str(tmp / "model.safetensors"))
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps(
        {"step": step, "epoch": epoch, "fingerprint": fingerprint}, sort_keys=True) + "\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in folder.glob("step-*"):
        if old != final:
            shutil.rmtree(old)
    return final


def latest_checkpoint(folder: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint made with the same settings and data, if any."""
    if not folder.is_dir():
        return None
    for ckpt in sorted(folder.glob("step-*"), reverse=True):
        meta = ckpt / "meta.json"
        if meta.is_file() and (ckpt / "state.pt").is_file():
            if json.loads(meta.read_text()).get("fingerprint") == fingerprint:
                return ckpt
            log.warning("ignoring %s: made with other settings or data", ckpt)
    return None


def load_checkpoint(ckpt: Path, model, optimizer, scheduler) -> int:
    from safetensors.torch import load_file

    weights = load_file(str(ckpt / "model.safetensors"))
    params = _trainable(model)
    if set(weights) != set(params):
        raise InputError(f"{ckpt}: checkpoint parameters do not match the model")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    state = torch.load(ckpt / "state.pt", weights_only=True, map_location="cpu")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(json.loads((ckpt / "meta.json").read_text())["step"])


def fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- training loop


def train(gen: Generator, examples: list[Example], cfg: TrainConfig, checkpoint_dir: str | Path,
          fingerprint_: str = "", on_step=None) -> list[dict]:
    """Train in place; resume from checkpoint_dir when it holds a matching checkpoint.

    `on_step(step)` is called after every optimiser step (tests use it to interrupt a run).
    Returns the training log (one dict per step, including steps from before a resume).
    """
    if not examples:
        raise InputError("no training examples")
    checkpoint_dir = Path(checkpoint_dir)
    dev = device()
    model = gen.model.to(dev)
    model.train()
    pad_id = gen.tokenizer.pad_token_id
    per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = cfg.max_steps or cfg.epochs * per_epoch
    warmup = int(round(cfg.warmup_ratio * total))
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    scheduler = linear_schedule(optimizer, warmup, total)

    step = 0
    log_path = checkpoint_dir / LOG_FILE
    ckpt = latest_checkpoint(checkpoint_dir, fingerprint_)
    if ckpt is not None:
        step = load_checkpoint(ckpt, model, optimizer, scheduler)
        log.info("resuming from %s (step %d of %d)", ckpt, step, total)
    history = []
    if step and log_path.is_file():
        history = [r for r in map(json.loads, log_path.read_text().splitlines()) if r["step"] <= step]
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    log_path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in history))

    lengths = [len(e.input_ids) + len(e.labels) * e.decoder for e in examples]
    bar = tqdm(total=total, initial=step, desc="train", mininterval=5)
    with log_path.open("a") as log_file:
        while step < total:
            epoch = step // per_epoch
            batches = bucket_order(lengths, cfg.batch_size, cfg.seed, epoch, cfg.bucket_batches)
            for idx in batches[step - epoch * per_epoch :]:
                batch = {k: v.to(dev) for k, v in collate([examples[i] for i in idx], pad_id).items()}
                nll, n = token_nll(model, batch, gen.fmt.seq2seq)
                loss = nll / max(n, 1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                step += 1
                record = {"step": step, "epoch": epoch, "loss": round(loss.item(), 6), "lr": lr}
                history.append(record)
                log_file.write(json.dumps(record, sort_keys=True) + "\n")
                log_file.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                if step % cfg.checkpoint_every == 0 and step < total:
                    save_checkpoint(checkpoint_dir, step, epoch, model, optimizer, scheduler,
                                    fingerprint_)
                if on_step is not None:
                    on_step(step)
                if step >= total:
                    break
    bar.close()
    model.eval()
    return history


def read_targets(path: str | Path):
    df = read_table(path, ["id", "prompt", "targets"])
    if df.empty:
        raise InputError(f"{path}: no rows")
    targets = [list(t) if t is not None else [] for t in df["targets"]]
    if not any(targets):
        raise InputError(f"{path}: every 'targets' list is empty")
    return df["prompt"].astype(str).tolist(), targets


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Fine-tune a generator on sampled targets.")
    p.add_argument("--targets", required=True, help="targets/{method}/...parquet")
    p.add_argument("--generator", default="{}", help="JSON of the config's generator section")
    p.add_argument("--train", default="{}", help="JSON of the config's train section")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (tiny-gpt2; empty = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--checkpoints", required=True, help="checkpoint folder (kept on failure)")
    p.add_argument("--out", required=True, help="model output folder")
    p.add_argument("--keep-checkpoints", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec, train_cfg = json.loads(args.generator), json.loads(args.train)
    cfg = TrainConfig.from_dict(train_cfg, seed=args.seed)
    prompts, targets = read_targets(args.targets)
    gen = build_generator(spec, args.tokenizer or None, seed=args.seed)
    examples = build_examples(gen, prompts, targets, cfg.max_length)
    n_params = sum(p.numel() for p in gen.model.parameters())
    log.info("%d examples, %d parameters, device %s", len(examples), n_params, device())
    fp = fingerprint(spec, train_cfg, args.seed, Path(args.targets).read_bytes())
    ckpt_dir = Path(args.checkpoints)
    train(gen, examples, cfg, ckpt_dir, fp)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_generator(gen, tmp)
    shutil.copyfile(ckpt_dir / LOG_FILE, tmp / LOG_FILE)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    if not args.keep_checkpoints:
        shutil.rmtree(ckpt_dir)


if __name__ == "__main__":
    from isaac.cli import run

    run(main)
