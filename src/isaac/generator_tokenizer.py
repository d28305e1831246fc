"""Fit the tiny-gpt2 generator's byte-level BPE tokenizer on a corpus's train texts.

Fitted once per corpus (rule ``generator_tokenizer``) and shared by every tiny-gpt2 run, so all
methods see the same vocabulary. The tokenizer never sees validation or test text.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from isaac.cli import run
from isaac.io import atomic_dir, train_rows
from isaac.models import BOS, EOS, PAD, SEP, GeneratorConfig
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.generator_tokenizer")


def train_tokenizer(texts, vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE fitted on the corpus itself: no download, and every byte stays encodable."""
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


def tokenizer_texts(corpus_path) -> list[str]:
    """The TRAIN prompts and responses, prompts first."""
    train = train_rows(corpus_path)
    return train["prompt"].tolist() + train["response"].tolist()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet (train split is used)")
    add_config_argument(parser, GeneratorConfig)  # generator.tiny.vocab_size
    parser.add_argument("--out", required=True, help="output folder for the tokenizer files")
    args = parser.parse_args(argv)
    config = parse(GeneratorConfig, args.config)
    tokenizer = train_tokenizer(tokenizer_texts(args.corpus), config.tiny.vocab_size)
    with atomic_dir(args.out) as tmp:
        tokenizer.save_pretrained(str(tmp))
    log.info("tokenizer: %d tokens -> %s", len(tokenizer), args.out)


if __name__ == "__main__":
    run(main)
