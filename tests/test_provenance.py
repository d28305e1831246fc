"""Every run records the commit of its stages; a folder mixing commits is refused."""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from conftest import REPO, property_settings
from isaac.cli import run
from isaac.provenance import (
    UNKNOWN,
    code_version,
    commits,
    config_layers,
    content_fingerprint,
    main,
    model_code,
    problems,
    run_code,
)


def write_runs(folder, codes):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"method": ["raw"] * len(codes), "code": codes}).to_csv(
        folder / "runs.csv", index=False
    )
    return folder


def test_code_version_is_this_checkouts_commit_marked_dirty_when_it_differs():
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    version = code_version()
    assert version == UNKNOWN or version.removesuffix("-dirty") == head


def test_a_runs_code_joins_its_distinct_stage_stamps():
    assert run_code(["b", None, "a", "b"]) == "a+b"
    assert run_code([None, ""]) == ""
    assert commits(pd.DataFrame({"code": ["a+b", "b", None]})) == ["a", "b"]


def test_model_code_reads_the_train_stamp_or_none(tmp_path):
    assert model_code(None) is None and model_code(str(tmp_path)) is None
    (tmp_path / "provenance.json").write_text(json.dumps({"code": "abc"}))
    assert model_code(str(tmp_path)) == "abc"


def test_config_layers_hash_each_file_in_order_and_name_a_missing_one(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1\n")
    layers = config_layers([str(tmp_path / "a.yaml")])
    assert layers[0]["path"].endswith("a.yaml") and len(layers[0]["sha256"]) == 64
    with pytest.raises(Exception, match="b.yaml: config layer not found"):
        config_layers([str(tmp_path / "b.yaml")])


def test_check_passes_one_commit_and_refuses_mixed_dirty_unstamped_or_old_folders(tmp_path, capsys):
    good = write_runs(tmp_path / "good", ["abc", "abc"])
    assert problems(good) == []
    run(main, ["check", str(good)])
    mixed = write_runs(tmp_path / "mixed", ["abc", "abc+def"])
    assert problems(mixed) == [f"{mixed / 'runs.csv'}: runs from 2 commits: abc, def"]
    assert "without a recorded commit" in problems(write_runs(tmp_path / "u", ["abc", ""]))[0]
    assert "uncommitted" in problems(write_runs(tmp_path / "d", ["abc-dirty"]))[0]
    (tmp_path / "old").mkdir()
    pd.DataFrame({"method": ["raw"]}).to_csv(tmp_path / "old" / "runs.csv", index=False)
    assert "predate the commit stamps" in problems(tmp_path / "old")[0]
    with pytest.raises(SystemExit) as exit_:
        run(main, ["check", str(good), str(mixed)])
    assert exit_.value.code == 1 and "runs from 2 commits" in capsys.readouterr().err


PROPERTY = property_settings(HealthCheck.function_scoped_fixture)


def rewrite_keeping_times(path, data: bytes) -> None:
    """Replace the file's content and set its times back, as cp -p, rsync -a and tar x do."""
    before = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@PROPERTY
@given(old=st.text(), new=st.text())
def test_the_fingerprint_follows_the_content_whatever_the_modification_time(tmp_path, old, new):
    data = tmp_path / "data.jsonl"
    data.write_text(old, encoding="utf-8")
    before = content_fingerprint([data])
    rewrite_keeping_times(data, new.encode("utf-8"))
    assert (content_fingerprint([data]) == before) == (old == new)


def test_a_folders_fingerprint_is_its_files_names_and_contents_less_hidden_ones(tmp_path):
    folder = tmp_path / "encoder"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "1_Pooling" / "config.json").write_text("{}")
    (folder / ".git").mkdir()
    (folder / ".git" / "index").write_bytes(b"a")
    first = content_fingerprint([folder])

    (folder / ".git" / "index").write_bytes(b"b")  # no loader reads it
    (tmp_path / "notes.txt").write_text("beside the folder")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("model.safetensors", "1_Pooling"):
        os.rename(folder / name, copy / name)
    assert content_fingerprint([copy]) == first  # the same files under another folder

    rewrite_keeping_times(copy / "model.safetensors", b"other weights")
    assert content_fingerprint([copy]) != first
    rewrite_keeping_times(copy / "model.safetensors", b"weights")
    (copy / "1_Pooling" / "config.json").rename(copy / "1_Pooling" / "other.json")
    assert content_fingerprint([copy]) != first  # a file's name is part of what is read


def test_a_missing_file_is_fingerprinted_as_missing_for_snakemake_to_report(tmp_path):
    assert content_fingerprint([tmp_path / "gone.json"]) != content_fingerprint([])
