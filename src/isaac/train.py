"""Fine-tune a generator on (prompt -> target) pairs with transformers.Trainer (accelerate).

What the Trainer does not know and this module adds:

- Loss on TARGET tokens only: prompt and padding positions carry label -100, and the loss of an
  optimizer step is the mean over every target token of its global batch (all processes and
  accumulation steps: the Trainer's token count, `compute_loss_func`).
- The m targets of a prompt train as one example (one batch slot), so every method takes the
  same number of optimizer steps whatever m is (docs/training.md).
- Batches come from length buckets whose order is a pure function of (seed, epoch)
  (`BucketBatches`); each batch of `batch_size` prompts is cut into `gradient_accumulation`
  micro-batches, and each of those is split across the processes, so the global batch of a step
  is the same whatever the process count.
- Checkpoints carry a fingerprint of the settings and data (a checkpoint made with other ones is
  never resumed), the Trainer's pickled training arguments are dropped from them, and SIGTERM
  (what SLURM sends at a job's time limit) finishes the step, saves a checkpoint there and exits
  with status 143.

Several processes (`train.processes`): the CLI relaunches itself under torch's elastic launcher
(torchrun) with one process per GPU, or per CPU core group with gloo where there is no GPU;
every process runs the same Trainer, which accelerate turns into DDP (or FSDP with
`train.fsdp`). A process that dies ends the whole job: the launcher stops the others and exits
non-zero.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from isaac.cli import optional, run
from isaac.io import InputError, atomic_dir, read_table, write_json
from isaac.lm import Example, build_examples, collate, label_nll
from isaac.models import (
    Generator,
    GeneratorConfig,
    build_generator,
    continue_generator,
    save_generator,
    uses_lora,
)
from isaac.provenance import FILE as PROVENANCE_FILE
from isaac.provenance import stamp
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.train")
LOG_FILE = "train_log.jsonl"
MARKER = "isaac_checkpoint.json"  # written last into a checkpoint: its fingerprint and step
CHECKPOINT_PREFIX = "checkpoint-"  # the Trainer's checkpoint folder names
PICKLED = ("training_args.bin",)  # what the Trainer pickles into a checkpoint; never kept
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
    processes: int
    gradient_accumulation: int
    gradient_checkpointing: bool
    precision: str
    fsdp: bool


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Optimizer steps of one pass: the last batch is completed, never dropped."""
    return math.ceil(n_examples / batch_size)


def total_steps(config: TrainConfig, n_examples: int) -> int:
    return config.max_steps or config.epochs * steps_per_epoch(n_examples, config.batch_size)


def bucket_order(
    lengths, batch_size: int, seed: int, epoch: int, bucket_batches: int = BUCKET_BATCHES
):
    """Batches of `batch_size` examples of similar length (less padding), in an order fixed by
    (seed, epoch).

    Shuffle; complete the last batch with the epoch's first examples (as a distributed sampler
    does), so every batch is full and splits evenly across processes; sort by length within
    chunks of `bucket_batches` batches; cut into batches; shuffle the batches.
    """
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    order = np.resize(order, steps_per_epoch(len(order), batch_size) * batch_size)
    chunk = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class BucketBatches(torch.utils.data.Sampler):
    """The Trainer's batch sampler: every bucket_order batch as `micro_batches` consecutive
    micro-batches (gradient accumulation); accelerate splits each micro-batch across the
    processes. The Trainer calls set_epoch, also when it resumes mid-epoch."""

    def __init__(self, lengths, batch_size: int, micro_batches: int, seed: int):
        self.lengths, self.steps_batch, self.micro_batches = lengths, batch_size, micro_batches
        self.batch_size = batch_size // micro_batches  # what one iteration yields
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return steps_per_epoch(len(self.lengths), self.steps_batch) * self.micro_batches

    def __iter__(self):
        for batch in bucket_order(self.lengths, self.steps_batch, self.seed, self.epoch):
            for part in np.split(batch, self.micro_batches):
                yield part.tolist()


# ---------------------------------------------------------------- checkpoints


def fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()[:16]


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.removeprefix(CHECKPOINT_PREFIX))


def latest_checkpoint(folder: Path, fingerprint_: str) -> Path | None:
    """The newest complete checkpoint made with the same settings and data, if any."""
    if not folder.is_dir():
        return None
    found = [
        c
        for c in folder.glob(f"{CHECKPOINT_PREFIX}*")
        if c.name.removeprefix(CHECKPOINT_PREFIX).isdigit()
    ]
    for ckpt in sorted(found, key=checkpoint_step, reverse=True):
        marker = ckpt / MARKER
        if marker.is_file():
            if json.loads(marker.read_text()).get("fingerprint") == fingerprint_:
                return ckpt
            log.warning("ignoring %s: made with other settings or data", ckpt)
    return None


def clear_other_checkpoints(folder: Path, keep: Path | None) -> None:
    """Remove every checkpoint but the one resumed from: the Trainer keeps the newest by step
    number, so a stale folder with a higher step would otherwise push out the new ones."""
    for ckpt in folder.glob(f"{CHECKPOINT_PREFIX}*"):
        if ckpt != keep:
            shutil.rmtree(ckpt, ignore_errors=True)


# ---------------------------------------------------------------- the Trainer


class CheckpointMarker(TrainerCallback):
    """Marks a saved checkpoint complete (the marker is written last, so a checkpoint cut by a
    kill is never resumed) and drops the Trainer's pickled arguments."""

    def __init__(self, fingerprint_: str):
        self.fingerprint = fingerprint_

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
            for name in PICKLED:
                (ckpt / name).unlink(missing_ok=True)
            marker = {"fingerprint": self.fingerprint, "step": state.global_step}
            tmp = ckpt / f".{MARKER}.tmp"
            tmp.write_text(json.dumps(marker, sort_keys=True) + "\n")
            tmp.rename(ckpt / MARKER)


class StopOnSigterm(TrainerCallback):
    """On SIGTERM the step in progress finishes, then a checkpoint is saved and training stops.
    The request is shared across processes (a max over ranks), so every rank stops at the same
    step. Also calls `on_step(step)` after every optimizer step (tests interrupt runs with it)."""

    def __init__(self, total: int, on_step=None):
        self.total, self.on_step = total, on_step
        self.requested, self.stopped_at = False, None

    @contextmanager
    def armed(self):
        """SIGTERM sets the request while the block runs; the caller's handler is back after
        it, also when training fails."""

        def handler(signum, frame):
            self.requested = True

        previous = signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def on_step_end(self, args, state, control, **kwargs):
        if self.on_step is not None:
            self.on_step(state.global_step)
        stop = self.requested
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([int(stop)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        if stop and state.global_step < self.total:
            control.should_save = control.should_training_stop = True
            self.stopped_at = state.global_step


class GroupTrainer(Trainer):
    """A Trainer whose batches come from a batch sampler of prompt groups (BucketBatches);
    accelerate shards them across the processes."""

    def __init__(self, *args, batch_sampler, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sampler = batch_sampler

    def get_train_dataloader(self):
        loader = torch.utils.data.DataLoader(
            self.train_dataset, batch_sampler=self.batch_sampler, collate_fn=self.data_collator
        )
        return self.accelerator.prepare(loader)


def training_arguments(config: TrainConfig, seed: int, output_dir: Path, total: int, model):
    """The Trainer's arguments from the train section: one place for the mapping."""
    cuda = torch.cuda.is_available()
    bf16 = config.precision == "bf16" or (
        config.precision == "auto" and cuda and torch.cuda.is_bf16_supported()
    )
    fsdp = {}
    if config.fsdp and not cuda:
        log.warning("train.fsdp shards across GPUs and this machine has none: plain DDP instead")
    elif config.fsdp:
        layers = sorted(getattr(model, "_no_split_modules", None) or [])
        if not layers:
            raise InputError(
                f"train.fsdp: {type(model).__name__} names no transformer block to shard by"
            )
        fsdp = {
            "fsdp": True,
            "fsdp_config": {"transformer_layer_cls_to_wrap": layers, "reshard_after_forward": True},
        }
    return TrainingArguments(
        output_dir=str(output_dir),
        seed=seed,
        max_steps=total,
        per_device_train_batch_size=max(
            1, config.batch_size // (config.gradient_accumulation * world_size())
        ),
        gradient_accumulation_steps=config.gradient_accumulation,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        learning_rate=config.learning_rate,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        warmup_steps=int(round(config.warmup_ratio * total)),
        max_grad_norm=config.grad_clip,
        optim="adamw_torch",
        bf16=bf16,
        use_cpu=not cuda,
        ddp_backend="gloo" if launched() and not cuda else None,
        ddp_timeout=600,
        accelerator_config={"split_batches": True},
        remove_unused_columns=False,
        dataloader_num_workers=0,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.checkpoint_every,
        save_total_limit=2,  # the previous checkpoint survives until the next one is complete
        report_to="none",
        disable_tqdm=False,
        **fsdp,
    )


def train(
    gen: Generator,
    examples: list[list[Example]],
    cfg: TrainConfig,
    seed: int,
    checkpoint_dir: str | Path,
    fingerprint_: str = "",
    on_step=None,
    objective=None,
) -> list[dict]:
    """Train in place with the Trainer; resume from checkpoint_dir when it holds a matching
    checkpoint.

    `examples` holds one group per prompt (its m target sequences, isaac.lm.build_examples);
    a batch is `batch_size` groups and its loss the mean over all their target tokens. Another
    `objective` (isaac.dpo.PairObjective: groups of chosen and rejected sequences) adds its
    fields to each batch and makes the Trainer that computes its loss.
    `seed` fixes the batch order (and any dropout). `on_step(step)` is called after every
    optimiser step (tests use it to interrupt a run). On SIGTERM the current step finishes, a
    checkpoint is saved at it and Terminated is raised. Returns the training log (one dict per
    step: step, epoch, loss, lr, and tokens: the non-padding tokens trained on so far, over all
    processes; steps from before a resume included).
    """
    if not examples or not all(examples):
        raise InputError("no training examples (or a prompt without targets)")
    checkpoint_dir = Path(checkpoint_dir)
    total = total_steps(cfg, len(examples))
    ckpt = latest_checkpoint(checkpoint_dir, fingerprint_)
    args = training_arguments(cfg, seed, checkpoint_dir, total, gen.model)
    log.info("process %d of %d", args.process_index, args.world_size)
    check_batch_split(cfg, args.world_size)
    if args.process_index == 0:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        clear_other_checkpoints(checkpoint_dir, ckpt)
    if ckpt is not None:
        log.info("resuming from %s (step %d)", ckpt, checkpoint_step(ckpt))
    lengths = [max(len(e.input_ids) + len(e.labels) * e.decoder for e in g) for g in examples]
    sampler = BucketBatches(lengths, cfg.batch_size, cfg.gradient_accumulation, seed)
    pad_id, seq2seq = gen.tokenizer.pad_token_id, gen.fmt.seq2seq
    decoder_inputs = getattr(gen.model, "prepare_decoder_input_ids_from_labels", None)

    def collate_groups(groups):
        batch = collate([e for g in groups for e in g], pad_id)
        if seq2seq:  # the loss is computed outside the model, which then never sees labels
            batch["decoder_input_ids"] = decoder_inputs(labels=batch["labels"])
        if objective is not None:
            batch.update(objective.fields(groups))
        return batch

    def target_token_mean(outputs, labels, num_items_in_batch):
        return label_nll(outputs.logits, labels, seq2seq) / num_items_in_batch

    sigterm = StopOnSigterm(total, on_step)
    trainer_args = {
        "batch_sampler": sampler,
        "model": gen.model,
        "args": args,
        "train_dataset": examples,
        "data_collator": collate_groups,
        "callbacks": [CheckpointMarker(fingerprint_), sigterm],
    }
    if objective is None:
        trainer = GroupTrainer(**trainer_args, compute_loss_func=target_token_mean)
    else:
        trainer = objective.trainer(**trainer_args)
    with sigterm.armed():
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    if sigterm.stopped_at is not None:
        raise Terminated(
            sigterm.stopped_at, checkpoint_dir / f"{CHECKPOINT_PREFIX}{sigterm.stopped_at}"
        )
    if trainer.is_fsdp_enabled:  # every rank takes part; rank 0 gets the full weights
        gen.weights = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    gen.model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
    gen.model.eval()
    per_epoch = steps_per_epoch(len(examples), cfg.batch_size)
    return [
        {
            "step": r["step"],
            "epoch": (r["step"] - 1) // per_epoch,
            "loss": r["loss"],
            "lr": r["learning_rate"],
            "tokens": r["num_input_tokens_seen"],
        }
        for r in trainer.state.log_history
        if "loss" in r
    ]


# ---------------------------------------------------------------- processes


def check_batch_split(config: TrainConfig, processes: int) -> None:
    """Every process gets an equal share of each micro-batch: before the launch (this node's
    processes) and in every process (the whole job's, several nodes included)."""
    share = config.gradient_accumulation * processes
    if config.batch_size % share:
        raise InputError(
            f"train.batch_size ({config.batch_size}) must be a multiple of "
            f"train.gradient_accumulation x the {processes} processes ({share})"
        )


def check_processes(config: TrainConfig, threads: int, lora: bool) -> None:
    """Refuse, before anything trains, what would otherwise hang or fail inside the group."""
    cuda = torch.cuda.is_available()
    available = torch.cuda.device_count() if cuda else len(os.sched_getaffinity(0))
    kind = "GPUs" if cuda else "CPU cores"
    if config.processes > available:
        raise InputError(
            f"train.processes is {config.processes} but this machine has {available} {kind}"
        )
    if not cuda and config.processes > threads:
        raise InputError(
            f"train.processes is {config.processes} but the job has {threads} threads "
            "(one CPU process needs at least one)"
        )
    check_batch_split(config, config.processes)
    if config.fsdp and config.processes < 2:
        raise InputError("train.fsdp shards the model across processes: it needs processes >= 2")
    if config.fsdp and lora:
        raise InputError(
            "train.fsdp is for full fine-tuning; LoRA adapters (generator.lora, or smollm2) are "
            "small enough for plain data parallelism: set train.fsdp false"
        )
    if config.precision == "bf16" and not (cuda and torch.cuda.is_bf16_supported()):
        raise InputError(
            "train.precision is bf16 but this machine has no CUDA device with bfloat16 "
            "(use auto: bf16 where the GPU has it, else fp32)"
        )


def world_size() -> int:
    """Processes of the whole job: all nodes' (torchrun sets WORLD_SIZE), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """True inside a process started by torchrun (or srun + torchrun on several nodes)."""
    return "LOCAL_RANK" in os.environ


def relaunch(processes: int, argv: Sequence[str], module: str = "isaac.train") -> int:
    """Run the CLI of `module` again as `processes` processes under torch's elastic launcher on
    this node; return the launcher's exit status (143 when it was stopped by SIGTERM)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={processes}", "--module", module, *argv]
    )
    try:
        torchrun(args)
    except SignalException as stop:
        log.error("the launcher got signal %s; its processes were stopped", stop.sigval)
        return 128 + int(stop.sigval)
    except ChildFailedError as err:
        failures = err.failures.values()
        codes = {f.exitcode for f in failures}
        log.error("a training process failed:\n%s", err.format_msg())
        return TERMINATED_EXIT if codes == {TERMINATED_EXIT} else 1
    return 0


def read_targets(path: str | Path):
    df = read_table(path, ["id", "prompt", "targets"])
    if df.empty:
        raise InputError(f"{path}: no rows")
    targets = [list(t) if t is not None else [] for t in df["targets"]]
    empty = [i for i, t in enumerate(targets) if not t]
    if empty:
        raise InputError(f"{path}: row {empty[0]} ({df['id'].iloc[empty[0]]!r}) has no targets")
    return df["prompt"].astype(str).tolist(), targets


def launch(config: TrainConfig, generator: GeneratorConfig, threads: int, argv, module: str):
    """Refuse what cannot run; with several processes, run `module` again under torchrun and
    exit with its status; else (and in each launched process) set torch's threads."""
    if not launched():
        check_processes(config, threads, uses_lora(generator))
        if config.processes > 1:
            sys.exit(relaunch(config.processes, sys.argv[1:] if argv is None else argv, module))
    torch.set_num_threads(max(1, threads // config.processes))


def folder_weights(folder: str | None) -> list[bytes]:
    """The safetensors bytes of a model folder a run starts from (for its fingerprint)."""
    return [p.read_bytes() for p in sorted(Path(folder).glob("*.safetensors"))] if folder else []


def train_and_save(
    gen: Generator, examples, config: TrainConfig, args, fingerprint_: str, objective=None
) -> None:
    """Train (exit 143 after a checkpoint on SIGTERM), then save the model, its training log and
    provenance from rank 0, and drop the checkpoints unless --keep-checkpoints."""
    ckpt_dir = Path(args.checkpoints)
    try:
        history = train(
            gen, examples, config, args.seed, ckpt_dir, fingerprint_, objective=objective
        )
    except Terminated as stop:
        log.error("%s; the next run resumes from it", stop)
        sys.exit(TERMINATED_EXIT)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    with atomic_dir(args.out) as tmp:
        save_generator(gen, tmp)
        (tmp / LOG_FILE).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in history))
        write_json(stamp(), tmp / PROVENANCE_FILE)
    if not args.keep_checkpoints:
        shutil.rmtree(ckpt_dir)


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every training command shares: the run's seed, the train and generator
    sections, threads, checkpoints and the model folder."""
    p.add_argument("--seed", type=int, required=True, help="the run's seed")
    add_config_argument(p, TrainConfig)
    p.add_argument(
        "--generator",
        required=True,
        help="the generator section as a JSON object (isaac.models.GeneratorConfig)",
    )
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the whole job")
    p.add_argument("--checkpoints", required=True, help="checkpoint folder (kept on failure)")
    p.add_argument("--out", required=True, help="model output folder")
    p.add_argument("--keep-checkpoints", action="store_true")


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
    add_job_arguments(p)
    args = p.parse_args(argv)
    config = parse(TrainConfig, args.config)
    generator = parse(GeneratorConfig, args.generator, "--generator")
    prompts, targets = read_targets(args.targets)
    launch(config, generator, args.threads, argv, "isaac.train")
    if args.init:
        gen = continue_generator(generator, args.init)
    else:
        gen = build_generator(generator, args.tokenizer or None, args.seed, args.base or None)
    examples = build_examples(gen, prompts, targets, generator.max_length)
    n_params = sum(p.numel() for p in gen.model.parameters())
    log.info("%d examples, %d parameters", len(examples), n_params)
    fp = fingerprint(
        asdict(generator),
        asdict(config),
        args.seed,
        Path(args.targets).read_bytes(),
        *folder_weights(args.init),
    )
    train_and_save(gen, examples, config, args, fp)


if __name__ == "__main__":
    run(main)
