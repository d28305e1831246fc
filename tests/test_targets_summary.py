"""The targets' summary: one row per statistics file, in method, tau and group-size order."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from isaac.cli import run
from isaac.targets_summary import main, targets_summary


def stats(method: str, tau: float = 1.0, group_size: str | None = None, safe: float = 0.5):
    grouped = group_size is not None
    return {
        "method": method,
        "tau": tau,
        "group_size": group_size,
        "oracle_safe_rate": safe,
        "oracle_safe_rate_by_category": {"B": safe / 2, "A": safe},
        "distinct_target_share": 0.25,
        "head_shortcut_share": 0.0834 if grouped else 0.0,
        "mean_si": 0.4449 if grouped else None,
        "mean_n_groups": 130.66 if grouped else None,
        "head_group_size": {"singleton_share": 0.1224} if grouped else None,
        "n": 12,
    }


def test_a_row_per_run_in_method_tau_and_group_size_order():
    table = targets_summary(
        [
            stats("isaac", 1.0, "distinct", 0.6),
            stats("isaac", 0.1, "members", 0.7),
            stats("isaac", 1.0, "members", 0.5974),
            stats("raw"),
        ]
    )
    assert list(table.columns) == [
        "method",
        "tau",
        "group size",
        "oracle safe",
        "A",
        "B",
        "distinct share",
        "head shortcut",
        "mean SI",
        "groups per pool",
        "all-singleton pools",
        "examples",
    ]
    assert table[["method", "tau", "group size"]].values.tolist() == [
        ["raw", "1", "—"],
        ["isaac", "0.1", "members"],
        ["isaac", "1", "members"],
        ["isaac", "1", "distinct"],
    ]
    assert table.iloc[2, 3:].tolist() == [
        "0.597",
        "0.597",
        "0.299",
        "0.250",
        "0.083",
        "0.445",
        "130.7",
        "0.122",
        12,
    ]
    assert table.loc[0, "mean SI"] == "—" and table.loc[0, "all-singleton pools"] == "—"


def test_the_cli_writes_the_csv(tmp_path):
    paths = []
    for s in (stats("max", group_size="members"), stats("sft", safe=1.0)):
        paths.append(tmp_path / f"{s['method']}.json")
        paths[-1].write_text(json.dumps(s))
    main([*map(str, paths), "--csv", str(tmp_path / "targets.csv")])
    table = pd.read_csv(tmp_path / "targets.csv", dtype=str, keep_default_na=False)
    assert list(table["method"]) == ["sft", "max"] and table.loc[0, "oracle safe"] == "1.000"


def test_statistics_of_another_stage_are_refused(tmp_path, capsys):
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"eps": 0.75, "pools": 9}))
    with pytest.raises(SystemExit) as exit_:
        run(main, [str(path), "--csv", str(tmp_path / "targets.csv")])
    assert exit_.value.code == 2 and "unknown methods [None]" in capsys.readouterr().err
