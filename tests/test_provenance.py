"""Every run records the commit of its stages; a folder mixing commits is refused."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from conftest import REPO
from isaac.cli import run
from isaac.provenance import (
    UNKNOWN,
    code_version,
    commits,
    config_layers,
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
