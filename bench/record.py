"""Shared by the benchmark scripts in bench/: one measurement written to docs/benchmarks.json.

The file holds one key per measurement, each with `value`, `unit`, `baseline` (or null),
`ratio` (value / baseline, or null), `command` (what regenerates it) and `machine`. Scripts
merge their keys into it, so each script rewrites only its own measurements.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

BENCHMARKS_JSON = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.json"


def machine() -> str:
    """Where a measurement was taken, in words: CPU count, memory and the GPU when there is one."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    words = f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB"
    try:
        import torch

        if torch.cuda.is_available():
            words += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return words


def record(
    key: str,
    value: float,
    unit: str,
    command: str,
    baseline: float | None = None,
    path: Path = BENCHMARKS_JSON,
    **extra,
) -> dict:
    """Merge one measurement into `path` (keys sorted) and return its entry."""
    entry = {
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": value / baseline if baseline else None,
        "command": command,
        "machine": machine(),
        **extra,
    }
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = entry
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return entry
