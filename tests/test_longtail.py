"""Rank-frequency figures and the numbers behind them."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac.demo import generate
from isaac.io import InputError
from isaac.longtail import main, plot_ngrams, plot_responses, rank_frequency, unsafe_by_frequency
from isaac.ngrams import count_ngrams
from isaac.plots import ReportConfig
from isaac.settings import to_json

PNG = b"\x89PNG\r\n\x1a\n"
DEMO = schema_defaults("corpus")["demo"]


def demo_corpus(n_prompts: int) -> pd.DataFrame:
    return generate(**{**DEMO, "n_prompts": n_prompts})


def figure_config(**overrides) -> str:
    """--config of a figure rule: the report section (dpi) from the schema defaults."""
    return to_json(settings(ReportConfig, "report", **overrides))


def test_rank_frequency_is_sorted_counts():
    assert rank_frequency(pd.Series(["a", "b", "a", "c", "a", "b"])).tolist() == [3, 2, 1]


def test_unsafe_share_by_frequency_bins():
    strings = pd.Series(["x", "x", "x", "y", "z"])
    labels = pd.Series(["safe", "safe", "unsafe", "unsafe", None])
    table = unsafe_by_frequency(strings, labels)
    assert table.to_dict("list") == {
        "bin": ["1", "2-3"],
        "n": [1, 3],
        "unsafe": [1.0, pytest.approx(1 / 3)],
    }


def test_figures_are_written(tmp_path):
    corpus = demo_corpus(120)
    plot_responses(corpus, tmp_path / "r.png", dpi=60)
    unlabelled = corpus.assign(label=None, category=None)
    plot_responses(unlabelled, tmp_path / "u.png", dpi=60)
    tables = []
    for n in (1, 2):
        path = tmp_path / f"n{n}.parquet"
        count_ngrams([r.lower().split() for r in corpus["response"]], n).to_parquet(path)
        tables.append(path)
    plot_ngrams(tables, tmp_path / "g.png", dpi=60)
    for name in ("r.png", "u.png", "g.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == [
        "g.png",
        "r.png",
        "u.png",
    ]  # no temporary files left behind


def test_cli_writes_both_figures_at_the_configured_dpi(tmp_path):
    corpus = demo_corpus(60)
    corpus.to_parquet(tmp_path / "c.parquet")
    path = tmp_path / "n1.parquet"
    count_ngrams([r.lower().split() for r in corpus["response"]], 1).to_parquet(path)
    main(
        [
            "responses",
            "--corpus",
            str(tmp_path / "c.parquet"),
            "--config",
            figure_config(dpi=50),
            "--out",
            str(tmp_path / "r50.png"),
        ]
    )
    main(
        [
            "responses",
            "--corpus",
            str(tmp_path / "c.parquet"),
            "--config",
            figure_config(dpi=100),
            "--out",
            str(tmp_path / "r100.png"),
        ]
    )
    main(
        [
            "ngrams",
            "--tables",
            str(path),
            "--config",
            figure_config(),
            "--out",
            str(tmp_path / "g.png"),
        ]
    )
    for name in ("r50.png", "r100.png", "g.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG

    def width(name):  # PNG IHDR: width is the big-endian uint32 at bytes 16..20
        return int.from_bytes((tmp_path / name).read_bytes()[16:20], "big")

    assert width("r100.png") == pytest.approx(2 * width("r50.png"), abs=2)


def test_cli_needs_a_train_split(tmp_path):
    corpus = demo_corpus(60).assign(split="test")
    corpus.to_parquet(tmp_path / "c.parquet")
    with pytest.raises(InputError, match="no train rows"):
        main(
            [
                "responses",
                "--corpus",
                str(tmp_path / "c.parquet"),
                "--config",
                figure_config(),
                "--out",
                str(tmp_path / "f.png"),
            ]
        )
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize(
    "config,fragment",
    [
        pytest.param({}, "missing key(s) dpi", id="missing"),
        pytest.param(
            {**schema_defaults("report"), "format": "svg"}, "unknown key(s) format", id="unknown"
        ),
        pytest.param({"dpi": 120.5}, "--config.dpi", id="wrong-type"),
    ],
)
def test_cli_config_must_hold_exactly_the_figure_keys(tmp_path, config, fragment):
    demo_corpus(60).to_parquet(tmp_path / "c.parquet")
    out = tmp_path / "f.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "isaac.longtail",
            "responses",
            "--corpus",
            str(tmp_path / "c.parquet"),
            "--config",
            json.dumps(config),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr and fragment in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.parquet"]
