"""De-quantise the bundled SmolLM2-135M-Instruct once per corpus (rule ``generator_base``).

Reading the GGUF file takes about half a minute on a CPU; every training job of a sweep would pay
it again. This stage saves the de-quantised model and its tokenizer as a plain Hugging Face
folder (safetensors) that the train jobs load instead.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from isaac.cli import run
from isaac.io import atomic_dir
from isaac.models import load_smollm2

log = logging.getLogger("isaac.generator_base")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (generator_base/)")
    args = parser.parse_args(argv)
    model, tokenizer = load_smollm2()
    with atomic_dir(args.out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    n_params = sum(p.numel() for p in model.parameters())
    log.info("SmolLM2 (%d parameters) -> %s", n_params, args.out)


if __name__ == "__main__":
    run(main)
