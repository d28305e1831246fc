"""Distil a static encoder from the bundled MiniLM with model2vec (rule ``encoder_model2vec``).

model2vec passes every token of MiniLM's vocabulary through MiniLM once, reduces the outputs with
PCA and weights them by token frequency rank; a text's vector is then the mean of its tokens'
vectors, with no transformer at encoding time. Distilling takes about half a minute on 2 cores
and runs offline (the teacher is the packaged MiniLM folder); encoding DiaSafety's texts takes
about a second instead of MiniLM's two minutes. The folder is also a sentence-transformers model
(StaticEmbedding + Normalize); ``isaac.embed`` reads its token vectors and tokenizer without torch
and computes the same vectors.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from isaac.cli import run
from isaac.embed import EmbedConfig
from isaac.io import atomic_dir
from isaac.packaged import minilm_path
from isaac.settings import add_config_argument, parse, require

log = logging.getLogger("isaac.encoder_model2vec")


def distil(config: EmbedConfig):
    """The static model distilled from MiniLM, in float32 (no quantisation of the vectors);
    embed.model2vec_dims is the PCA dimension of its token vectors."""
    from model2vec.distill import distill  # only this stage needs the distillation code

    require(config, "model2vec_dims")
    return distill(
        model_name=str(minilm_path()), pca_dims=config.model2vec_dims, quantize_to="float32"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_argument(parser, EmbedConfig)
    parser.add_argument("--out", required=True, help="encoders/model2vec/ folder")
    args = parser.parse_args(argv)
    model = distil(parse(EmbedConfig, args.config))
    with atomic_dir(args.out) as tmp:
        model.save_pretrained(str(tmp), model_name="model2vec")  # not the temporary name
    log.info("distilled %d token vectors of dim %d -> %s", *model.embedding.shape, args.out)


if __name__ == "__main__":
    run(main)
