"""Fine-tune a generator on (prompt -> target) pairs with resumable checkpoints.

Loss is the token cross-entropy over TARGET tokens only: prompt and padding positions carry label
-100. The m targets of a prompt train as one example (one batch slot, the mean loss over their
tokens), so every method takes the same number of optimizer steps whatever m is
(docs/training.md).
Batches come from length buckets whose order is a pure function of (seed, epoch), so a run that
resumes from a checkpoint at step s sees exactly the batches an uninterrupted run sees after s.

Checkpoints live in a folder beside the model output (not inside it), so they survive Snakemake's
removal of an incomplete output: re-running after a kill resumes from the last checkpoint.
SIGTERM (what SLURM sends at a job's time limit, before SIGKILL) finishes the current step,
saves a checkpoint there and exits with status 143, so the time a killed job trained is kept.
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
import signal
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from isaac.cli import optional, run
from isaac.io import InputError, atomic_dir, read_table
from isaac.lm import Example, build_examples, collate, token_nll
from isaac.models import (
    Generator,
    GeneratorConfig,
    build_generator,
    continue_generator,
    device,
    save_generator,
)
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.train")
LOG_FILE = "train_log.jsonl"
BUCKET_BATCHES = 50  # batches sorted by length together before the batch order is shuffled
TERMINATED_EXIT = 128 + signal.SIGTERM  # the status a shell reports for a process ended by SIGTERM


class Terminated(Exception):
    """Training stopped on SIGTERM after saving a checkpoint at `step`."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(f"stopped by SIGTERM at step {step}; checkpoint {checkpoint}")
        self.step, self.checkpoint = step, checkpoint


@dataclass(frozen=True)
class TrainConfig:
    """The train section (the generator it trains is the generator section)."""

    epochs: int
    max_steps: int | None
    batch_size: int
    learning_rate: float
    warmup_ratio: float
    grad_clip: float
    checkpoint_every: int


def bucket_order(
    lengths, batch_size: int, seed: int, epoch: int, bucket_batches: int = BUCKET_BATCHES
):
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


def save_checkpoint(
    folder: Path, step: int, epoch: int, model, optimizer, scheduler, fingerprint: str
) -> Path:
    """Write step-{step}/ atomically, then drop older checkpoints."""
    final = folder / f"step-{step:08d}"
    with atomic_dir(final) as tmp:
        save_file(
            {n: p.detach().cpu().contiguous() for n, p in _trainable(model).items()},
            str(tmp / "model.safetensors"),
        )
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(
            json.dumps({"step": step, "epoch": epoch, "fingerprint": fingerprint}, sort_keys=True)
            + "\n"
        )
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


@contextmanager
def sigterm_flag():
    """A dict whose "set" turns True on SIGTERM while the block runs (the previous handler is
    restored after), so the loop can stop between steps instead of dying mid-step."""
    flag = {"set": False}

    def handler(signum, frame):
        flag["set"] = True

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume(
    checkpoint_dir: Path, fingerprint_: str, model, optimizer, scheduler
) -> tuple[int, list]:
    """(step, log records up to it) from the newest matching checkpoint, or (0, []); the log
    file is rewritten to hold exactly those records."""
    step, history = 0, []
    log_path = checkpoint_dir / LOG_FILE
    ckpt = latest_checkpoint(checkpoint_dir, fingerprint_)
    if ckpt is not None:
        step = load_checkpoint(ckpt, model, optimizer, scheduler)
        log.info("resuming from %s (step %d)", ckpt, step)
    if step and log_path.is_file():
        history = [
            r for r in map(json.loads, log_path.read_text().splitlines()) if r["step"] <= step
        ]
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    log_path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in history))
    return step, history


def train(
    gen: Generator,
    examples: list[list[Example]],
    cfg: TrainConfig,
    seed: int,
    checkpoint_dir: str | Path,
    fingerprint_: str = "",
    on_step=None,
) -> list[dict]:
    """Train in place; resume from checkpoint_dir when it holds a matching checkpoint.

    `examples` holds one group per prompt (its m target sequences, isaac.lm.build_examples);
    a batch is `batch_size` groups and its loss the mean over all their target tokens.
    `seed` fixes the batch order (and any dropout). `on_step(step)` is called after every
    optimiser step (tests use it to interrupt a run). On SIGTERM the current step finishes, a
    checkpoint is saved at it and Terminated is raised. Returns the training log (one dict per
    step, including steps from before a resume).
    """
    if not examples or not all(examples):
        raise InputError("no training examples (or a prompt without targets)")
    checkpoint_dir = Path(checkpoint_dir)
    dev = device()
    model = gen.model.to(dev)
    model.train()
    pad_id = gen.tokenizer.pad_token_id
    per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = cfg.max_steps or cfg.epochs * per_epoch
    torch.manual_seed(seed)
    np.random.seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    scheduler = linear_schedule(optimizer, int(round(cfg.warmup_ratio * total)), total)
    step, history = resume(checkpoint_dir, fingerprint_, model, optimizer, scheduler)

    lengths = [
        max(len(e.input_ids) + len(e.labels) * e.decoder for e in group) for group in examples
    ]
    bar = tqdm(total=total, initial=step, desc="train", mininterval=5)
    with (checkpoint_dir / LOG_FILE).open("a") as log_file, sigterm_flag() as sigterm:
        while step < total:
            epoch = step // per_epoch
            batches = bucket_order(lengths, cfg.batch_size, seed, epoch)
            for idx in batches[step - epoch * per_epoch :]:
                rows = [e for i in idx for e in examples[i]]
                batch = {k: v.to(dev) for k, v in collate(rows, pad_id).items()}
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
                if on_step is not None:
                    on_step(step)
                if step >= total:
                    break
                if sigterm["set"] or step % cfg.checkpoint_every == 0:
                    ckpt = save_checkpoint(
                        checkpoint_dir, step, epoch, model, optimizer, scheduler, fingerprint_
                    )
                    if sigterm["set"]:
                        raise Terminated(step, ckpt)
    bar.close()
    model.eval()
    return history


def read_targets(path: str | Path):
    df = read_table(path, ["id", "prompt", "targets"])
    if df.empty:
        raise InputError(f"{path}: no rows")
    targets = [list(t) if t is not None else [] for t in df["targets"]]
    empty = [i for i, t in enumerate(targets) if not t]
    if empty:
        raise InputError(f"{path}: row {empty[0]} ({df['id'].iloc[empty[0]]!r}) has no targets")
    return df["prompt"].astype(str).tolist(), targets


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Fine-tune a generator on sampled targets.")
    p.add_argument("--targets", required=True, help="targets/{method}/...parquet")
    p.add_argument("--tokenizer", default="", help="tokenizer folder (tiny-gpt2 only)")
    p.add_argument("--base", default="", help="de-quantised SmolLM2 folder (smollm2 only)")
    p.add_argument(
        "--init",
        type=optional(str),
        help="the previous round's model folder to start from (train.rounds > 1)",
    )
    p.add_argument("--seed", type=int, required=True, help="the run's seed")
    add_config_argument(p, TrainConfig)
    p.add_argument(
        "--generator",
        required=True,
        help="the generator section as a JSON object (isaac.models.GeneratorConfig)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--checkpoints", required=True, help="checkpoint folder (kept on failure)")
    p.add_argument("--out", required=True, help="model output folder")
    p.add_argument("--keep-checkpoints", action="store_true")
    args = p.parse_args(argv)
    config = parse(TrainConfig, args.config)
    generator = parse(GeneratorConfig, args.generator, "--generator")
    torch.set_num_threads(args.threads)
    prompts, targets = read_targets(args.targets)
    if args.init:
        gen = continue_generator(generator, args.init)
    else:
        gen = build_generator(generator, args.tokenizer or None, args.seed, args.base or None)
    examples = build_examples(gen, prompts, targets, generator.max_length)
    n_params = sum(p.numel() for p in gen.model.parameters())
    log.info("%d examples, %d parameters, device %s", len(examples), n_params, device())
    init = (
        [p.read_bytes() for p in sorted(Path(args.init).glob("*.safetensors"))] if args.init else []
    )
    fp = fingerprint(
        asdict(generator), asdict(config), args.seed, Path(args.targets).read_bytes(), *init
    )
    ckpt_dir = Path(args.checkpoints)
    try:
        train(gen, examples, config, args.seed, ckpt_dir, fp)
    except Terminated as stop:
        log.error("%s; the next run resumes from it", stop)
        sys.exit(TERMINATED_EXIT)
    with atomic_dir(args.out) as tmp:
        save_generator(gen, tmp)
        shutil.copyfile(ckpt_dir / LOG_FILE, tmp / LOG_FILE)
    if not args.keep_checkpoints:
        shutil.rmtree(ckpt_dir)


if __name__ == "__main__":
    run(main)
