"""The judges' table: one row per metrics.json, val, test and unseen-context columns."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from isaac.cli import run
from isaac.judge_table import judges_table, main


def block(auroc: float, balanced: float) -> dict:
    return {"auroc": auroc, "balanced_accuracy": balanced, "accuracy": 0.5, "n": 10}


TRAIN = {
    "features": "tfidf-lr",
    "fit": "train",
    "n_train": 90,
    **block(0.8476, 0.7576),
    "val": block(0.8217, 0.7516),
    "unseen": block(0.7843, 0.6781),
}
HELDOUT = {
    "features": "tfidf-lr",
    "fit": "heldout",
    "n_fit": 15,
    "cv": block(0.78, 0.70),
    "unseen": block(0.6922, 0.5976),
}


def test_a_train_fit_and_a_heldout_fit_each_make_a_row():
    table = judges_table([TRAIN, HELDOUT])
    assert table.to_dict("records") == [
        {
            "judge": "tfidf-lr",
            "fit": "train",
            "rows fitted on": 90,
            "val AUROC": "0.822",
            "val balanced accuracy": "0.752",
            "test AUROC": "0.848",
            "unseen AUROC": "0.784",
            "unseen balanced accuracy": "0.678",
        },
        {
            "judge": "tfidf-lr",
            "fit": "heldout",
            "rows fitted on": 15,
            "val AUROC": "—",
            "val balanced accuracy": "—",
            "test AUROC": "—",
            "unseen AUROC": "0.692",
            "unseen balanced accuracy": "0.598",
        },
    ]


def test_the_cli_writes_the_csv_in_the_order_given(tmp_path):
    paths = []
    for name, metrics in (("heldout", HELDOUT), ("train", TRAIN)):
        paths.append(tmp_path / f"{name}_metrics.json")
        paths[-1].write_text(json.dumps(metrics))
    main([*map(str, paths), "--csv", str(tmp_path / "judges.csv")])
    table = pd.read_csv(tmp_path / "judges.csv", dtype=str, keep_default_na=False)
    assert list(table["fit"]) == ["heldout", "train"]
    assert table.loc[0, "test AUROC"] == "—" and table.loc[1, "test AUROC"] == "0.848"


def test_an_unknown_fit_is_refused(tmp_path, capsys):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({**TRAIN, "fit": "copied"}))
    with pytest.raises(SystemExit) as exit_:
        run(main, [str(path), "--csv", str(tmp_path / "judges.csv")])
    assert exit_.value.code == 2 and "fit 'copied'" in capsys.readouterr().err
