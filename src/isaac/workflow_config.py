"""The workflow's config, refused before any job in one line naming the file or key.

The Snakefile runs these checks before it plans a job: config files that give a key twice (YAML
and Snakemake keep the last one without a word), numbers that are not finite (NaN passes every
bound of a JSON schema), and the schema's verdict, reworded as `error: <key>: <what is wrong>`.
A run through the SLURM executor is refused in the same way, before its first submission, when
no SLURM controller answers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import yaml

from isaac.io import InputError

# Seconds `scontrol ping` may take: a controller that runs answers at once.
SLURM_PING_TIMEOUT_S = 5
SLURM_PROFILE = "profiles/slurm"
WITHOUT_SLURM = f"or run without --profile {SLURM_PROFILE}"


def refuse(where: str, what: str):
    """Stop the workflow before any job: one line naming the file or key, exit status 2."""
    print(f"error: {where}: {what}", file=sys.stderr)
    raise SystemExit(2)


def key_path(parts) -> str:
    """A config key as a user writes it: sweep.taus[0] (the top level: config)."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return text.lstrip(".") or "config"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping giving one key twice."""

    def construct_mapping(self, node, deep=False):
        first_line = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise InputError(
                    f"line {line}: key {key!r} given again (first on line {first_line[key]}); "
                    "only one value can hold"
                )
            first_line[key] = line
        return super().construct_mapping(node, deep)


def _unique_pairs(pairs):
    """A JSON object's pairs as a dict, refusing a key given twice."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise InputError(f"key {key!r} given twice in one object; only one value can hold")
        seen.add(key)
    return dict(pairs)


def refuse_duplicate_keys(path) -> None:
    """Refuse a config file (JSON or YAML, as Snakemake reads it) that gives a key twice."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        try:
            json.loads(text, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError:
            yaml.load(text, Loader=_UniqueKeyLoader)
    except InputError as err:
        refuse(str(path), str(err))


def refuse_non_finite(config, parts=()) -> None:
    """Refuse a NaN or infinite number anywhere in the config (NaN passes every minimum and
    maximum of the schema, and neither names a file)."""
    if isinstance(config, float) and not math.isfinite(config):
        refuse(key_path(parts), f"{config} is not a finite number")
    if isinstance(config, dict):
        children = config.items()
    elif isinstance(config, list):
        children = enumerate(config)
    else:
        children = ()
    for key, value in children:
        refuse_non_finite(value, (*parts, key))


def refuse_schema_error(error: Exception) -> None:
    """Reword Snakemake's failed validation (its cause a jsonschema ValidationError) as one
    line naming the key; any other error is raised as it is."""
    cause = error.__context__
    if not hasattr(cause, "absolute_path"):
        raise error
    refuse(key_path(cause.absolute_path), cause.message)


def refuse_without_slurm_controller(timeout_s: float = SLURM_PING_TIMEOUT_S) -> None:
    """Refuse a run through the SLURM executor when `scontrol ping` finds no controller that
    answers: its first sbatch would fail only after about 50 s, the cause deep in the output."""
    try:
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=timeout_s
        )
    except OSError as err:
        refuse(
            SLURM_PROFILE,
            f"SLURM's scontrol cannot run ({err.strerror}); install SLURM's client tools "
            f"(scontrol, sbatch, squeue) on PATH {WITHOUT_SLURM}",
        )
    except subprocess.TimeoutExpired:
        cause = f"no reply within {timeout_s} s"
    else:
        # A controller that says UP takes the jobs, whatever the exit status (a backup
        # controller that is down can make it non-zero).
        if ping.returncode == 0 or " is UP" in ping.stdout:
            return
        cause = ping_failure(ping)
    refuse(
        SLURM_PROFILE,
        f"no SLURM controller answers (scontrol ping: {cause}); start slurmctld {WITHOUT_SLURM}",
    )


def ping_failure(ping: subprocess.CompletedProcess) -> str:
    """What a failed `scontrol ping` said: its last error line (a configuration it cannot
    read), else its first line (`Slurmctld(primary) at host is DOWN`)."""
    errors = ping.stderr.strip().splitlines()
    if errors:
        return errors[-1].removeprefix("scontrol: ")
    said = ping.stdout.strip().splitlines()
    return said[0] if said else f"exit status {ping.returncode}"
