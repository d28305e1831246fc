"""Preference optimisation (DPO) of a generator on the pairs of a pair method (isaac.pairs).

A pair method's run (isaac_dpo, oracle_dpo) starts from the model of the `raw` run of the same
m and seed (the corpus's own responses fine-tuned: the reference policy) and trains on
pairs/{run}.parquet with the train section's engine (isaac.train: the Trainer with its batches,
steps, checkpoints, resume, SIGTERM and processes) and DPO's loss (Rafailov et al. 2023, the
sigmoid loss of TRL's DPOTrainer):

    loss = -log sigmoid(beta ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))

per pair (c chosen, r rejected; log pi a sequence's summed log-probability of its response
tokens), averaged over the pairs of a batch. The reference log-probabilities are those of the
starting model, computed once before the first step (as TRL's `precompute_ref_log_probs`), so
no second model is held; dropout is off, as in TRL by default. A prompt's m pairs train as one
example, as its m targets do in isaac.train, so a run takes train.epochs passes over its
examples with pairs.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from isaac.cli import run
from isaac.io import InputError, read_table
from isaac.lm import Example, build_examples, collate, sequence_logps
from isaac.models import Generator, GeneratorConfig, continue_generator
from isaac.settings import parse
from isaac.train import (
    GroupTrainer,
    TrainConfig,
    add_job_arguments,
    fingerprint,
    folder_weights,
    launch,
    train_and_save,
)

log = logging.getLogger("isaac.dpo")


@dataclass(frozen=True)
class DpoConfig:
    """The dpo section."""

    beta: float


@dataclass
class ScoredExample(Example):
    """A chosen or rejected sequence with its log-probability under the reference model."""

    reference: float = 0.0


def dpo_loss(logps: torch.Tensor, reference: torch.Tensor, m: int, beta: float) -> torch.Tensor:
    """Per pair DPO loss, (groups, m), of rows laid out group after group, each its m chosen then
    its m rejected sequences."""
    policy, ref = logps.view(-1, 2, m), reference.view(-1, 2, m)
    margin = (policy[:, 0] - ref[:, 0]) - (policy[:, 1] - ref[:, 1])
    return -torch.nn.functional.logsigmoid(beta * margin)


class PairTrainer(GroupTrainer):
    """The Trainer with DPO's loss: the mean over a micro-batch's pairs, which the Trainer then
    divides by the accumulation steps (and DDP averages across processes)."""

    loss_is_scaled_for_ga = False

    def __init__(self, *args, objective: PairObjective, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective = objective

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        reference, labels = inputs.pop("reference_logps"), inputs.pop("labels")
        outputs = model(**inputs)
        logps = sequence_logps(outputs.logits, labels, self.objective.seq2seq)
        loss = dpo_loss(logps, reference, self.objective.m, self.objective.beta).mean()
        return (loss, outputs) if return_outputs else loss


@dataclass(frozen=True)
class PairObjective:
    """What isaac.train needs to train on pairs: each batch's reference log-probabilities and
    a Trainer with DPO's loss."""

    beta: float
    m: int
    seq2seq: bool

    def fields(self, groups: list[list[ScoredExample]]) -> dict[str, torch.Tensor]:
        return {"reference_logps": torch.tensor([e.reference for g in groups for e in g])}

    def trainer(self, **kwargs) -> PairTrainer:
        return PairTrainer(objective=self, **kwargs)


def read_pairs(path) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(prompts, chosen, rejected) of pairs/{run}.parquet: m of each on every row."""
    df = read_table(path, ["id", "prompt", "chosen", "rejected"])
    if df.empty:
        raise InputError(f"{path}: no rows")
    chosen = [list(c) if c is not None else [] for c in df["chosen"]]
    rejected = [list(r) if r is not None else [] for r in df["rejected"]]
    m = len(chosen[0])
    uneven = [i for i, (c, r) in enumerate(zip(chosen, rejected)) if not len(c) == len(r) == m]
    if m == 0 or uneven:
        row = uneven[0] if uneven else 0
        raise InputError(
            f"{path}: row {row} ({df['id'].iloc[row]!r}) does not hold the {m or 'm >= 1'} chosen "
            "and rejected responses of the first row"
        )
    return df["prompt"].astype(str).tolist(), chosen, rejected


def pair_examples(gen: Generator, prompts, chosen, rejected, max_length: int):
    """One group per prompt: its m chosen then its m rejected sequences."""
    both = [[*c, *r] for c, r in zip(chosen, rejected)]
    return build_examples(gen, prompts, both, max_length)


def without_dropout(model) -> None:
    """Set every dropout to 0 (TRL's DPOTrainer default, disable_dropout): the policy's
    log-probabilities are then those the reference was computed with, until it moves."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


@torch.no_grad()
def reference_logps(gen: Generator, groups, batch_size: int) -> list[list[ScoredExample]]:
    """The groups with each sequence's log-probability under the model as it is now (the
    starting model: DPO's reference), in batches of `batch_size` groups."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else "cpu"
    model = gen.model.to(device)
    was_training = model.training
    model.eval()
    seq2seq, pad_id = gen.fmt.seq2seq, gen.tokenizer.pad_token_id
    decoder_inputs = getattr(model, "prepare_decoder_input_ids_from_labels", None)
    scored = []
    for start in range(0, len(groups), batch_size):
        part = groups[start : start + batch_size]
        batch = collate([e for g in part for e in g], pad_id)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if seq2seq:
            inputs["decoder_input_ids"] = decoder_inputs(labels=batch["labels"])
        logits = model(**{k: v.to(device) for k, v in inputs.items()}).logits
        logps = sequence_logps(logits, batch["labels"].to(device), seq2seq).tolist()
        flat = iter(logps)
        scored += [[ScoredExample(**asdict(e), reference=next(flat)) for e in g] for g in part]
    model.train(was_training)
    return scored


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", required=True, help="pairs/{method}/...parquet")
    p.add_argument("--init", required=True, help="the model folder DPO starts from (raw's)")
    p.add_argument("--dpo", required=True, help="the dpo section as a JSON object")
    add_job_arguments(p)
    args = p.parse_args(argv)
    config = parse(TrainConfig, args.config)
    generator = parse(GeneratorConfig, args.generator, "--generator")
    dpo = parse(DpoConfig, args.dpo, "--dpo")
    prompts, chosen, rejected = read_pairs(args.pairs)
    launch(config, generator, args.threads, argv, "isaac.dpo")
    gen = continue_generator(generator, args.init)
    without_dropout(gen.model)
    groups = pair_examples(gen, prompts, chosen, rejected, generator.max_length)
    groups = reference_logps(gen, groups, config.batch_size)
    log.info("%d prompts with %d pairs each, beta %g", len(groups), len(chosen[0]), dpo.beta)
    objective = PairObjective(dpo.beta, len(chosen[0]), gen.fmt.seq2seq)
    fp = fingerprint(
        asdict(generator),
        asdict(config),
        asdict(dpo),
        args.seed,
        Path(args.pairs).read_bytes(),
        *folder_weights(args.init),
    )
    train_and_save(gen, groups, config, args, fp, objective)


if __name__ == "__main__":
    run(main)
