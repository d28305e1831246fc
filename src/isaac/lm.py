"""Language-model examples and their loss, shared by training and by the perplexity score.

An example is prompt + separator + target (+ end marker); its labels are the target tokens,
with prompt and padding positions set to -100 so only the target is scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from isaac.io import InputError
from isaac.models import Generator

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    decoder: bool = False  # seq2seq: labels are the decoder targets, not aligned with input_ids


def prompt_ids(gen: Generator, prompt: str) -> list[int]:
    """The prompt's token ids, cut to its LAST `max_prompt_tokens` tokens: the one truncation
    rule of training, perplexity and generation (the end of a dialogue context matters most)."""
    tok, fmt = gen.tokenizer, gen.fmt
    if fmt.seq2seq:
        ids = tok(prompt)["input_ids"]  # with the tokenizer's end marker, which is kept
    else:
        ids = tok(fmt.prompt_text(prompt), add_special_tokens=False)["input_ids"]
    return ids[-fmt.max_prompt_tokens :]


def encode_pair(gen: Generator, prompt: str, target: str, max_length: int) -> Example:
    """prompt + separator + target (+ eos); the target fills what the prompt leaves of
    max_length (seq2seq: the target alone is cut to max_length)."""
    tok, fmt = gen.tokenizer, gen.fmt
    p_ids = prompt_ids(gen, prompt)
    if fmt.seq2seq:
        tgt = tok(text_target=target, truncation=True, max_length=max_length)["input_ids"]
        if tok.eos_token_id is not None and (not tgt or tgt[-1] != tok.eos_token_id):
            tgt = tgt[: max_length - 1] + [tok.eos_token_id]  # tokenizers without a post-processor
        return Example(p_ids, tgt, decoder=True)
    if len(p_ids) >= max_length:
        raise InputError(
            f"generator.max_prompt_tokens ({fmt.max_prompt_tokens}) leaves no room for the target "
            f"in generator.max_length ({max_length})"
        )
    t_ids = tok(fmt.target_text(target), add_special_tokens=False)["input_ids"]
    t_ids = t_ids[: max_length - len(p_ids)]
    return Example(p_ids + t_ids, [IGNORE] * len(p_ids) + t_ids)


def build_examples(gen: Generator, prompts, targets, max_length: int) -> list[list[Example]]:
    """One group per prompt: its m sequences (targets[i] holds the m targets of prompts[i]).

    A group trains as one example: its sequences share a batch and the loss is the mean over
    their tokens, so a run takes the same number of optimizer steps whatever m is.
    """
    return [
        [encode_pair(gen, str(p), str(t), max_length) for t in ts]
        for p, ts in zip(prompts, targets)
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


def token_nll(
    model, batch: dict[str, torch.Tensor], seq2seq: bool = False
) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the labelled tokens, and how many there are."""
    labels = batch["labels"]
    if seq2seq:
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels
        ).logits
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = labels[:, 1:]
    return label_nll(logits, batch["labels"], seq2seq), int((labels != IGNORE).sum())


def label_nll(logits, labels, seq2seq: bool = False) -> torch.Tensor:
    """Summed negative log-likelihood of the labelled tokens under `logits` (a causal LM's
    logits at position t predict the token at t + 1); no host sync, so training can use it."""
    if not seq2seq:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


def sequence_logps(logits, labels, seq2seq: bool = False) -> torch.Tensor:
    """Each row's summed log-probability of its labelled tokens (the sequence log-likelihood
    that preference optimisation compares), float32."""
    if not seq2seq:
        logits, labels = logits[:, :-1], labels[:, 1:]
    labelled = labels != IGNORE
    logps = torch.log_softmax(logits.float(), dim=-1)
    token = logps.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token * labelled).sum(dim=-1)
