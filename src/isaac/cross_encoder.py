"""The torch side of the cross-encoder judge (`cross-minilm`, isaac.judge): the bundled MiniLM
fine-tuned as a two-class sequence classifier on the tokenizer pair (context, response), so
attention runs across both texts.

Fine-tuned with `transformers.Trainer` (report_to none, no checkpoints, logging only to the job's
log), seeded with `seed` for the classifier head's initialisation, dropout and the batch order
(`data_seed`); batches are grouped by length, so they carry little padding. Trainer rather than
a loop of our own: seeded so, it already gives byte-identical weights on a CPU for the same
corpus and settings (tests/test_judge.py checks it), and it places the model on CUDA when there
is a GPU. Saved as `save_pretrained` safetensors + config.json + the tokenizer files; loading
refuses remote code and checkpoints that do not fit the architecture.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from isaac.io import InputError, read_json, unreadable
from isaac.packaged import minilm_path

# torch and transformers are imported inside the functions: the linear judges' jobs, and every
# stage that loads a judge, start without them.
LABELS = {0: "safe", 1: "unsafe"}
PREDICT_BATCH = 64
# What save_pretrained writes for a BERT classifier and its fast tokenizer.
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def encode(tokenizer, contexts, responses, max_length: int) -> dict:
    """Token ids of the pairs (context, response), cut to max_length tokens."""
    return tokenizer(
        [str(c) for c in contexts],
        [str(r) for r in responses],
        truncation=True,
        max_length=max_length,
    )


def fit(contexts, responses, unsafe: np.ndarray, settings):
    """(model, tokenizer): the bundled MiniLM fine-tuned on labelled pairs (1 = unsafe) with
    the judge.cross_encoder `settings`."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    base = str(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False, local_files_only=True)
    set_seed(settings.seed)  # the classifier head is initialised from it
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        trust_remote_code=False,
        local_files_only=True,
    )
    enc = encode(tokenizer, contexts, responses, settings.max_length)
    rows = [
        {**{key: enc[key][i] for key in enc}, "labels": int(label)}
        for i, label in enumerate(unsafe)
    ]
    with tempfile.TemporaryDirectory(prefix="isaac-judge-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            report_to="none",
            save_strategy="no",
            logging_steps=50,
            disable_tqdm=True,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            seed=settings.seed,
            data_seed=settings.seed,
            train_sampling_strategy="group_by_length",
            dataloader_pin_memory=False,  # nothing to gain for batches this small
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
    model.eval()
    return model, tokenizer


def predict(model, tokenizer, contexts, responses, max_length: int) -> np.ndarray:
    """P(unsafe) per pair: softmax of the two logits, in batches of pairs of similar length,
    in eval mode without gradients, on CUDA where there is a GPU."""
    import torch

    enc = encode(tokenizer, contexts, responses, max_length)
    order = np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")
    probs = np.empty(len(order), dtype=np.float64)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(dev).eval()
    with torch.no_grad():
        for start in range(0, len(order), PREDICT_BATCH):
            idx = order[start : start + PREDICT_BATCH]
            batch = tokenizer.pad(
                {key: [enc[key][i] for i in idx] for key in enc}, return_tensors="pt"
            )
            logits = model(**{k: v.to(dev) for k, v in batch.items()}).logits
            probs[idx] = torch.softmax(logits.double(), dim=-1)[:, 1].cpu().numpy()
    return probs


def save(model, tokenizer, folder: Path) -> None:
    """Weights (safetensors), config.json and the tokenizer files into `folder`."""
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def load(folder: Path):
    """(model, tokenizer) of a saved cross-encoder; refuses remote code, an architecture
    transformers does not implement, missing or corrupt files and weights that do not fit."""
    from safetensors import SafetensorError
    from transformers import CONFIG_MAPPING, AutoModelForSequenceClassification, AutoTokenizer

    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise InputError(f"{folder}: cross-encoder judge lacks {', '.join(missing)}")
    config_path = folder / "config.json"
    config = read_json(config_path)
    if not isinstance(config, dict) or "auto_map" in config:
        raise InputError(f"{config_path}: asks for remote code (auto_map); refused")
    if config.get("model_type") not in CONFIG_MAPPING:
        raise InputError(
            f"{config_path}: model_type {config.get('model_type')!r} is not implemented by "
            "transformers (remote code is refused)"
        )
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(folder), trust_remote_code=False, local_files_only=True, output_loading_info=True
        )
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), trust_remote_code=False, local_files_only=True
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise unreadable(folder, f"not a loadable cross-encoder ({err})") from err
    mismatch = {k: sorted(map(str, v)) for k, v in info.items() if k != "error_msgs" and v}
    if mismatch or model.config.num_labels != len(LABELS):
        raise unreadable(folder, f"weights do not fit a two-class classifier ({mismatch})")
    model.eval()
    return model, tokenizer
