"""Reads that name the rule behind a corrupt intermediate; writes that leave nothing when full
and give their outputs the modes the umask asks for."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import schema_defaults
from isaac import io
from isaac.io import (
    InputError,
    NoSpaceError,
    producer,
    read_json,
    read_npz,
    read_table,
    train_rows,
    write_json,
    write_npz,
    write_parquet,
)
from isaac.packaged import minilm_path


@pytest.mark.parametrize(
    "path, rule",
    [
        ("results/x/corpus.parquet", "ingest"),
        ("results/x/tokens.parquet", "tokenize"),
        ("results/x/ngrams/n2.parquet", "ngrams"),
        ("results/x/embeddings/minilm.npz", "embed"),
        ("results/x/embeddings/shards/minilm-0-of-2.npz", "embed_shard"),
        ("results/x/neighbours/minilm-k150.parquet", "neighbours"),
        ("results/x/groups/dbscan.parquet", "assess"),
        ("results/x/targets/isaac/tau1.0-m1-seed0.parquet", "sample"),
        ("results/x/models/isaac/tau1.0-m1-seed0", "train"),
        ("results/x/models/isaac/tau1.0-m1-seed0/model.safetensors", "train"),
        ("results/x/rounds/isaac/tau1.0-m1-seed0/round1/config.json", "train_round"),
        ("results/x/generations/isaac/tau1.0-m1-seed0.parquet", "generate"),
        ("results/x/judge/tfidf-lr/judge.npz", "judge"),
        ("results/x/scores/isaac/tau1.0-m1-seed0.json", "score"),
        ("data/my_corpus.jsonl", None),
    ],
)
def test_every_intermediate_names_the_rule_that_makes_it(path, rule):
    assert producer(path) == rule


def corrupt(path, how: str) -> None:
    """Truncate a real file to half its bytes, or replace it with bytes of no format."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"\x00garbage\xff" * 40)


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results" / "x"
    (folder / "embeddings").mkdir(parents=True)
    return folder


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_corrupt_table_names_the_file_and_its_rule(results, how):
    path = results / "tokens.parquet"
    write_parquet(pd.DataFrame({"id": ["a", "b"], "response_tokens": [["x"], ["y", "z"]]}), path)
    corrupt(path, how)
    with pytest.raises(InputError, match=re.escape(f"{path}: not a readable Parquet file")) as err:
        read_table(path, ["id"])
    assert str(err.value).endswith("it is made by rule tokenize: delete it and rerun")


def test_a_table_without_a_needed_column_names_its_rule(results):
    path = results / "tokens.parquet"
    write_parquet(pd.DataFrame({"id": ["a"]}), path)
    with pytest.raises(InputError, match="missing column.*response_tokens.*rule tokenize"):
        read_table(path, ["id", "response_tokens"])


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_corrupt_npz_names_the_file_and_its_rule(results, how):
    path = results / "embeddings" / "tfidf.npz"
    write_npz(
        {"ids": np.array(["a"] * 50), "prompts": np.ones((50, 8), np.float32)}, path, compress=False
    )
    corrupt(path, how)
    with pytest.raises(InputError, match=re.escape(f"{path}: not a readable .npz file")) as err:
        read_npz(path, ("ids", "prompts"))
    assert "rule embed" in str(err.value)


def test_an_npz_without_a_needed_array_names_its_rule(results):
    path = results / "embeddings" / "tfidf.npz"
    write_npz({"ids": np.array(["a"])}, path, compress=False)
    with pytest.raises(InputError, match="missing array.*prompts.*rule embed"):
        read_npz(path, ("ids", "prompts"))


def test_a_corrupt_json_names_its_rule(results):
    path = results / "targets" / "isaac" / "tau1.0-m1-seed0.json"
    write_json({"n": 1}, path)
    corrupt(path, "truncated")
    with pytest.raises(InputError, match="malformed JSON.*rule sample: delete it and rerun"):
        read_json(path)


# ------------------------------------------------------------------------- full disk

# The table, JSON and array writers, each through isaac.io.atomic_path.
EVERY_WRITER = pytest.mark.parametrize(
    "write",
    [
        lambda path: write_parquet(pd.DataFrame({"a": [1]}), path),
        lambda path: write_json({"a": 1}, path),
        lambda path: write_npz({"a": np.zeros(3)}, path, compress=True),
    ],
    ids=["parquet", "json", "npz"],
)


@EVERY_WRITER
def test_a_write_that_hits_a_full_disk_names_the_file_and_leaves_nothing(
    tmp_path, monkeypatch, write
):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    monkeypatch.setattr(io.Path, "write_text", full)
    monkeypatch.setattr(np.lib.format, "write_array", full)
    out = tmp_path / "out" / "table"
    with pytest.raises(NoSpaceError, match=re.escape(f"{out}: no space left while writing it")):
        write(out)
    assert list(out.parent.iterdir()) == []


def test_a_model_folder_that_hits_a_full_disk_leaves_no_folder(tmp_path, monkeypatch):
    """Libraries that wrap the OSError (safetensors, torch) are recognised by the full disk."""
    monkeypatch.setattr(io.os, "statvfs", lambda folder: type("Full", (), {"f_bavail": 0})())
    out = tmp_path / "models" / "run"
    with pytest.raises(NoSpaceError, match="models/run: no space left"):
        with io.atomic_dir(out) as tmp:
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("unexpected pos 704 vs 598")  # what torch.save says
    assert list(out.parent.iterdir()) == []


def _limit_file_size():
    """In the child: files stop growing at 4 KiB (EFBIG), without privileges."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_a_stage_over_the_file_size_limit_says_so_in_one_line_and_writes_nothing(tmp_path):
    """A real write failure, not a patched one: ingest's corpus table outgrows RLIMIT_FSIZE."""
    config = schema_defaults("corpus")
    config.pop("name")
    out = tmp_path / "results" / "corpus.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "isaac.ingest", "--config", json.dumps(config), "--out", str(out)],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"error: {out}: no space left while writing it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out.parent.iterdir()) == []


def test_train_rows_keep_the_train_split_in_order_with_text_ids_and_no_missing_texts(tmp_path):
    corpus = pd.DataFrame(
        {
            "id": [3, 1, 2, 4],
            "split": ["train", "test", "train", "train"],
            "prompt": ["a", "b", None, "d"],
            "response": ["x", "y", "z", None],
        }
    )
    write_parquet(corpus, tmp_path / "corpus.parquet")
    train = train_rows(tmp_path / "corpus.parquet")
    assert train["id"].tolist() == ["3", "2", "4"]
    assert train["prompt"].tolist() == ["a", "", "d"] and train["response"].tolist() == [
        "x",
        "z",
        "",
    ]
    write_parquet(corpus.assign(id=["c", "a", "c", "d"]), tmp_path / "dup.parquet")
    with pytest.raises(InputError, match="duplicate id .c."):
        train_rows(tmp_path / "dup.parquet")
    write_parquet(corpus.assign(split="test"), tmp_path / "none.parquet")
    with pytest.raises(InputError, match="no rows with split 'train'"):
        train_rows(tmp_path / "none.parquet")


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["umask022", "umask077", "umask002"])
def umask(request):
    """The process's umask set to the parameter for the test, then restored."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@EVERY_WRITER
def test_a_written_file_has_the_mode_of_a_plain_open_under_the_umask(tmp_path, umask, write):
    out = tmp_path / "table"
    write(out)
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert mode(out) == mode(plain) == 0o666 & ~umask


def test_a_written_folder_and_everything_in_it_have_the_modes_of_mkdir_and_open(tmp_path, umask):
    out = tmp_path / "models" / "run"
    with io.atomic_dir(out) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "weights").write_bytes(b"w")
        with io.atomic_path(tmp / "config.json") as inner:  # a 0600 temporary file inside
            inner.write_text("{}")
        os.chmod(tmp / "sub", 0o700)
    assert mode(out) == mode(out / "sub") == 0o777 & ~umask
    assert mode(out / "config.json") == mode(out / "sub" / "weights") == 0o666 & ~umask


def test_the_umask_read_from_proc_is_the_one_set(umask):
    assert io.current_umask() == umask


def model_folder(tmp_path):
    """The bundled MiniLM's files but its weights: a sentence-transformers folder to spoil."""
    folder = tmp_path / "model"
    shutil.copytree(minilm_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    return folder


def test_a_safetensors_model_folder_passes_the_check(tmp_path):
    io.check_model_folder(minilm_path())
    folder = model_folder(tmp_path)
    (folder / "openvino").mkdir()
    (folder / "openvino" / "openvino_model.bin").write_bytes(b"\x80\x3f\x00\x00" * 4)  # raw floats
    (folder / ".git").mkdir()
    torch.save({"w": torch.zeros(1)}, folder / ".git" / "stale.bin")  # no loader reads it
    io.check_model_folder(folder)


@pytest.mark.parametrize(
    "name, save",
    [
        ("pytorch_model.bin", lambda path: torch.save({"w": torch.zeros(1)}, path)),
        (
            "1_Pooling/legacy.pt",
            lambda path: torch.save(
                {"w": torch.zeros(1)}, path, _use_new_zipfile_serialization=False
            ),
        ),
        ("training_state.pkl", lambda path: path.write_bytes(b"(lp0\n.")),  # protocol 0
    ],
    ids=["torch-zip", "torch-legacy", "pkl-name"],
)
def test_a_model_folder_holding_a_pickle_is_refused_naming_the_file(tmp_path, name, save):
    folder = model_folder(tmp_path)
    save(folder / name)
    with pytest.raises(InputError, match=re.escape(f"{folder / name}: a pickle file")):
        io.check_model_folder(folder)


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json"])
def test_a_model_folder_asking_for_its_own_code_is_refused_naming_the_file(tmp_path, name):
    folder = model_folder(tmp_path)
    config = json.loads((folder / name).read_text())
    (folder / name).write_text(json.dumps({**config, "auto_map": {"AutoModel": "custom.Model"}}))
    with pytest.raises(InputError, match=re.escape(f"{folder / name}: auto_map asks for")):
        io.check_model_folder(folder)
