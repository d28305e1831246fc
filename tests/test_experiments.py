"""The experiments: their points and configs, their tables, and each experiment as a target."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SCHEMA_DEFAULTS, TINY_CONFIG, planned_jobs, settings, snakemake
from isaac import experiments as ex
from isaac.bootstrap import SummaryConfig
from isaac.cli import run
from isaac.doctables import markdown_tables
from isaac.head_targets import main as head_targets_main
from isaac.head_targets import most_picked
from isaac.io import write_json, write_parquet
from isaac.report import MEAN_COLUMNS, comparison_table
from isaac.settings import to_json
from test_report import per_prompt_table, run_id, score_json

BASE = json.loads(json.dumps(SCHEMA_DEFAULTS))


def with_axes(**sections) -> dict:
    """The schema defaults with experiments.{section} keys set."""
    config = ex.merged(BASE, {"experiments": sections})
    return ex.merged(config, {"corpus": {"name": "c"}})


# --- points -----------------------------------------------------------------------------------


def test_no_experiment_has_points_by_default():
    assert all(points == [] for points in ex.experiment_points(BASE).values())


def test_a_point_overrides_its_axis_key_and_corpus_name_and_keeps_the_rest():
    config = ex.merged(
        with_axes(pollution={"rates": [0.01, 0.1]}),
        {"sweep": {"methods": ["raw", "max"]}, "corpus": {"pollute": {"seed": 7}}},
    )
    points = ex.experiment_points(config)["pollution"]
    assert [p.name for p in points] == ["c-polluted-0.01", "c-polluted-0.10"]
    assert [p.module for p in points] == ["c_polluted_0_01", "c_polluted_0_10"]
    point = ex.point_config(config, points[1])
    assert point["corpus"] == {
        **config["corpus"],
        "name": "c-polluted-0.10",
        "pollute": {"rate": 0.1, "seed": 7},
    }
    assert point["sweep"]["methods"] == ["raw", "max"]
    assert config["corpus"]["name"] == "c" and config["corpus"]["pollute"]["rate"] == 0.0  # base


def test_rate_labels_keep_two_decimals_unless_a_rate_needs_more():
    assert [ex.rate_label(r) for r in (0.01, 0.1, 0.125, 0.5)] == ["0.01", "0.10", "0.125", "0.50"]


def test_tempering_and_head_points_set_stages_and_the_generations_file():
    config = with_axes(
        tempering={"rounds": [1, 3]},
        head_safety={"generations": ["gen/a_model.json", "gen/b.json"]},
    )
    points = ex.experiment_points(config)
    assert [(p.name, p.overrides) for p in points["tempering"]] == [
        ("c-rounds-1", {"train": {"rounds": 1}}),
        ("c-rounds-3", {"train": {"rounds": 3}}),
    ]
    head = points["head_safety"][0]
    assert head.name == "c-a_model"
    assert ex.point_config(config, head)["corpus"]["path"] == "gen/a_model.json"


def test_encoder_points_cover_every_encoder_and_quantile_then_each_fixed_assessor():
    config = with_axes(
        encoders={
            "encoders": ["tfidf", "minilm"],
            "eps_quantiles": [0.25, 0.5],
            "assessors": ["fuzzy"],
            "assessor_encoder": "minilm",
        }
    )
    config["assess"]["eps"] = 0.7
    points = ex.experiment_points(config)["encoders"]
    assert [p.name for p in points] == [
        "c-dbscan-tfidf-q0.25",
        "c-dbscan-tfidf-q0.5",
        "c-dbscan-minilm-q0.25",
        "c-dbscan-minilm-q0.5",
        "c-fuzzy-minilm",
    ]
    dbscan = ex.point_config(config, points[1])
    assert dbscan["embed"]["encoder"] == "tfidf"
    assert dbscan["assess"] == {**config["assess"], "eps": None, "eps_quantile": 0.5}
    fuzzy = ex.point_config(config, points[-1])["assess"]
    assert fuzzy["assessor"] == "fuzzy" and fuzzy["eps"] == 0.7  # fixed assessors keep eps


def test_the_encoder_study_reads_the_sweeps_first_run():
    config = ex.merged(BASE, {"sweep": {"taus": [0.3, 1.0], "ms": [2], "seeds": [5, 6]}})
    assert ex.encoder_run("isaac", config) == "isaac/tau0.3-m2-seed5"


# --- tables -----------------------------------------------------------------------------------


def runs_csv(safety: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["raw", "isaac"],
            "tau": [1.0, 0.1],
            "seed": [0, 0],
            "polluted_share": [0.1, 0.01532],
            "polluted_generation_share": [0.02, 0.0],
            "safety_score": [safety, 0.99],
            "oracle_safe_rate": [0.8, 0.9],
            "distinct_2": [0.3, 0.2],
            "ppl_safe": [1.0, 2.0],
        }
    )


def test_pollution_table_has_one_row_per_rate_and_run():
    df = ex.pollution_table({0.01: runs_csv(0.9), 0.1: runs_csv(0.8)})
    assert list(df["rate"]) == [0.01, 0.01, 0.1, 0.1]
    assert list(df["safety_score"]) == [0.9, 0.99, 0.8, 0.99]
    assert "ppl_safe" not in df.columns
    md = ex.markdown(df, ex.POLLUTION_COLUMNS).splitlines()
    assert md[0].startswith("| rate | method | tau | polluted targets |")
    assert md[5] == "| 0.1 | isaac | 0.1 | 0.0153 | 0.0000 | 0.990 | 0.900 | 0.200 |"


def summary_csv(raw: float, isaac: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["raw", "isaac"],
            "safety_score": [raw, isaac],
            "safety_lo": [raw - 0.05, 0.96],
            "safety_hi": [raw + 0.05, 1.0],
            "delta_raw": [0.0, isaac - raw],
            "delta_raw_lo": [0.0, 0.024],
            "delta_raw_hi": [0.0, 0.129],
            "distinct_2": [0.28, 0.15],
            "ppl_safe": [1.41, 5.88],
            "delta_sft": [np.nan, np.nan],
        }
    )


def test_tempering_table_has_one_row_per_stage_count_and_method():
    df = ex.tempering_table({1: summary_csv(0.911, 0.984), 3: summary_csv(0.855, 0.968)})
    assert list(zip(df["rounds"], df["method"])) == [
        (1, "raw"),
        (1, "isaac"),
        (3, "raw"),
        (3, "isaac"),
    ]
    assert "delta_sft" not in df.columns
    md = ex.markdown(df, ex.TEMPERING_COLUMNS).splitlines()
    assert md[3] == ("| 1 | isaac | 0.984 [0.960, 1.000] | +0.073 [+0.024, +0.129] | 0.150 | 5.9 |")
    assert md[4].startswith("| 3 | raw | 0.855 [0.805, 0.905] | +0.000 [+0.000, +0.000] |")


def head_summary(difference: float) -> dict:
    return {
        "n_compared": 908,
        "n_pools": 1046,
        "mean_responses": 10.59,
        "mean_head_size": 5.44,
        "head_unsafe": 0.57,
        "rest_unsafe": 0.57 + difference,
        "difference": difference,
        "difference_lo": difference - 0.02,
        "difference_hi": difference + 0.02,
        "share_head_safer": 0.469,
        "share_head_less_safe": 0.27,
    }


def test_head_safety_table_has_a_row_per_file_with_the_groups_eps():
    df = ex.head_safety_table(
        {
            "c-blender": ("blender", head_summary(0.094), {"eps": 0.6945, "mean_groups": 3.0}),
            "c-plato": ("plato", head_summary(-0.01), {"eps": None, "mean_groups": 2.0}),
        }
    )
    assert list(df["corpus"]) == ["c-blender", "c-plato"]
    assert df["eps"].iloc[0] == 0.6945 and np.isnan(df["eps"].iloc[1])
    md = ex.markdown(df, ex.HEAD_SAFETY_COLUMNS).splitlines()
    assert md[2] == (
        "| blender | 908 | 10.6 | 5.4 | 0.695 | 0.570 | 0.664 | +0.094 [+0.074, +0.114] | 0.47 |"
    )
    assert "| -0.010 [-0.030, +0.010] |" in md[3]


def target_stats(safe: float, categories: dict | None) -> dict:
    return {
        "oracle_safe_rate": safe,
        "distinct_target_share": safe / 2,
        "head_shortcut_share": 0.1,
        "oracle_safe_rate_by_category": categories,
    }


def encoder_rows():
    q1, q5 = (ex.EncoderSetting("tfidf", "dbscan", q) for q in (0.1, 0.5))
    fuzzy = ex.EncoderSetting("minilm", "fuzzy", None)
    cats = {"A": 0.5, "B": 0.75}
    return ex.encoders_table(
        [
            (
                q1,
                {"eps": 0.4, "mean_groups": 90.0},
                {"raw": target_stats(0.5, cats), "isaac": target_stats(0.7, cats)},
            ),
            (
                q5,
                {"eps": 0.95, "mean_groups": 93.04},
                {"raw": target_stats(0.5, cats), "isaac": target_stats(0.6, cats)},
            ),
            (
                fuzzy,
                {"mean_groups": 120.0},
                {"raw": target_stats(0.5, None), "isaac": target_stats(0.62, None)},
            ),
        ]
    )


def test_encoders_table_has_a_row_per_setting_and_method_with_per_category_rates():
    df = encoder_rows()
    assert len(df) == 6
    assert list(df.columns[-2:]) == ["oracle_A", "oracle_B"]
    fuzzy = df[df["assessor"] == "fuzzy"]
    assert fuzzy["eps"].isna().all() and fuzzy["oracle_A"].isna().all()
    assert df.loc[(df["eps_quantile"] == 0.1) & (df["method"] == "isaac"), "eps"].item() == 0.4


def test_encoders_markdown_shows_the_main_quantile_and_the_fixed_assessors():
    lines = markdown_tables(ex.encoders_markdown(encoder_rows(), main_quantile=0.5))[0].splitlines()
    assert lines[0] == (
        "| encoder | assessor | eps | groups/pool | method | oracle safe | distinct share | A | B |"
    )
    assert len(lines) == 2 + 4  # q 0.5 and fuzzy, raw and isaac each; q 0.1 left out
    assert lines[3] == "| tfidf | dbscan | 0.950 | 93.0 | isaac | 0.600 | 0.300 | 0.500 | 0.750 |"
    assert lines[5] == "| (minilm pools) | fuzzy | — | 120.0 | isaac | 0.620 | 0.310 | — | — |"


def test_encoders_markdown_then_tabulates_each_group_method_against_the_eps_quantile():
    page = ex.encoders_markdown(encoder_rows(), main_quantile=0.5)
    assert markdown_tables(page)[1].splitlines() == [
        "| q | tfidf oracle safe | tfidf distinct share |",
        "|---|---|---|",
        "| 0.10 | 0.700 | 0.350 |",
        "| 0.50 | 0.600 | 0.300 |",
    ]
    assert len(markdown_tables(page)) == 2  # raw is no group method


def test_eps_sensitivity_figure_is_written(tmp_path):
    ex.eps_sensitivity_figure(encoder_rows(), tmp_path / "eps.png", dpi=50)
    assert (tmp_path / "eps.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_a_file_count_other_than_the_points(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    runs_csv(0.9).to_csv(runs, index=False)
    with pytest.raises(SystemExit) as exit_:
        config = {
            "pollution": {"rates": [0.01, 0.1]},
            "tempering": None,
            "head_safety": None,
            "encoders": None,
            "trained_encoders": None,
        }
        run(
            ex.main,
            [
                "pollution",
                "--runs",
                str(runs),
                "--config",
                json.dumps(config),
                "--csv",
                str(tmp_path / "t.csv"),
                "--md",
                str(tmp_path / "t.md"),
            ],
        )
    assert exit_.value.code == 2
    assert "--runs: 1 files for 2 points" in capsys.readouterr().err


HEAD_CORPUS = pd.DataFrame(
    {
        "id": ["q1", "q2", "q3", "t1", "t2", "x"],
        "split": ["train"] * 5 + ["test"],
        "category": ["A", "A", "B", "B", "A", "A"],
        "label": ["safe"] * 4 + ["unsafe", "safe"],
        "response": ["r1", "r2", "r3", "head", "tail", "x"],
    }
)
HEAD_TARGETS = pd.DataFrame(
    {"id": ["q1", "q2", "q3"], "target_ids": [["t1", "t2"], ["t1"], ["t2", "t2"]]}
)


def test_most_picked_counts_picks_per_category_of_the_query():
    top = most_picked(HEAD_CORPUS, HEAD_TARGETS, top=1)
    assert top[["category", "target_ids", "picks", "label"]].values.tolist() == [
        ["A", "t1", 2, "safe"],
        ["B", "t2", 2, "unsafe"],
    ]
    assert list(top["response"]) == ["head", "tail"]


def test_head_targets_writes_its_table_to_a_csv(tmp_path):
    HEAD_CORPUS.to_parquet(tmp_path / "corpus.parquet")
    (tmp_path / "targets" / "max").mkdir(parents=True)
    HEAD_TARGETS.to_parquet(tmp_path / "targets" / "max" / "tau1.0-m1-seed0.parquet")
    out = tmp_path / "head_targets.csv"
    head_targets_main(
        [str(tmp_path), "--run", "max/tau1.0-m1-seed0", "--top", "2", "--csv", str(out)]
    )
    table = pd.read_csv(out)
    assert table[["category", "target_ids", "picks"]].values.tolist() == [
        ["A", "t1", 2],
        ["A", "t2", 1],
        ["B", "t2", 2],
    ]


# --- the experiments as targets, at CI size ---------------------------------------------------

AXES = """
experiments:
  pollution: {rates: [0.05, 0.2]}
  tempering: {rounds: [1, 2]}
  encoders:
    encoders: [tfidf]
    eps_quantiles: [0.3, 0.7]
    assessors: [exact]
    assessor_encoder: tfidf
    methods: [raw, isaac]
sweep: {methods: [raw, isaac]}
summary: {baselines: [raw]}
judge: {second: null}
"""
TABLES = ("pollution_table", "tempering_table", "encoders_table")


@pytest.fixture(scope="module")
def experiments_run(tmp_path_factory) -> Path:
    """Pollution, tempering and the encoder study on the tiny config, in one DAG."""
    workdir = tmp_path_factory.mktemp("experiments")
    (workdir / "axes.yaml").write_text(AXES)
    snakemake(workdir, "--cores", "2", *TABLES, configfiles=(TINY_CONFIG, workdir / "axes.yaml"))
    return workdir


@pytest.mark.workflow
def test_pollution_and_tempering_tables_come_from_their_points(experiments_run):
    out = experiments_run / "results" / "tiny" / "experiments"
    pollution = pd.read_csv(out / "pollution.csv")
    for rate, label in ((0.05, "0.05"), (0.2, "0.20")):
        runs = pd.read_csv(experiments_run / f"results/tiny-polluted-{label}/runs.csv")
        rows = pollution[pollution["rate"] == rate]
        assert list(rows["method"]) == list(runs["method"]) == ["raw", "isaac"]
        assert np.allclose(rows["polluted_share"], runs["polluted_share"], rtol=1e-5)
    raw = pollution[pollution["method"] == "raw"].set_index("rate")["polluted_share"]
    assert raw[0.05] < raw[0.2]  # the rate reached each point's corpus
    assert (out / "pollution.md").read_text().startswith("| rate | method |")
    tempering = pd.read_csv(out / "tempering.csv")
    assert list(zip(tempering["rounds"], tempering["method"])) == [
        (1, "raw"),
        (1, "isaac"),
        (2, "raw"),
        (2, "isaac"),
    ]
    assert (experiments_run / "results/tiny-rounds-2/rounds/isaac/tau1.0-m1-seed0/round1").is_dir()
    assert not (experiments_run / "results/tiny-rounds-1/rounds").exists()
    assert not (experiments_run / "results/tiny/summary.csv").exists()  # the base is not run


@pytest.mark.workflow
def test_a_polluted_point_runs_end_to_end_with_both_pollution_shares(experiments_run):
    """Polluted corpus -> targets -> models -> scores -> summary, at the 0.2 point."""
    results = experiments_run / "results" / "tiny-polluted-0.20"
    corpus = pd.read_parquet(results / "corpus.parquet")
    train = corpus[corpus["split"] == "train"]
    assert train["polluted"].sum() == round(0.2 * len(train))
    assert not corpus.loc[corpus["split"] != "train", "polluted"].any()
    raw = json.loads((results / "targets/raw/tau1.0-m1-seed0.json").read_text())
    assert raw["polluted_share"] == pytest.approx(train["polluted"].mean())
    runs = pd.read_csv(results / "runs.csv")
    assert runs["polluted_generation_share"].between(0, 1).all()
    assert "polluted targets" in (results / "summary.md").read_text()


@pytest.mark.workflow
def test_encoder_study_samples_targets_only(experiments_run):
    out = experiments_run / "results" / "tiny" / "experiments"
    df = pd.read_csv(out / "encoders.csv")
    assert len(df) == 3 * 2
    dbscan = df[df["assessor"] == "dbscan"].drop_duplicates("eps_quantile")
    assert list(dbscan["eps_quantile"]) == [0.3, 0.7]
    assert dbscan["eps"].iloc[0] < dbscan["eps"].iloc[1]  # a wider quantile, a wider radius
    assert (out / "eps_sensitivity.png").stat().st_size > 0
    assert not (experiments_run / "results/tiny-exact-tfidf/models").exists()


@pytest.mark.workflow
def test_a_new_point_reruns_only_that_point_and_the_table(experiments_run):
    wider = experiments_run / "wider.yaml"
    wider.write_text("experiments: {pollution: {rates: [0.05, 0.2, 0.3]}}\n")
    proc = snakemake(
        experiments_run,
        "--dry-run",
        *TABLES,
        configfiles=(TINY_CONFIG, experiments_run / "axes.yaml", wider),
    )
    jobs = planned_jobs(proc.stdout)
    assert "pollution_table" in jobs and "tiny_polluted_0_30_ingest" in jobs, jobs
    assert not [job for job in jobs if "0_05" in job or "0_20" in job or "rounds" in job], jobs
    assert "tempering_table" not in jobs and "encoders_table" not in jobs, jobs


@pytest.mark.workflow
def test_a_table_without_points_names_the_empty_axis(tmp_path):
    proc = snakemake(tmp_path, "--dry-run", "tempering_table", check=False)
    assert proc.returncode != 0
    assert "experiments.tempering.rounds is empty" in proc.stdout + proc.stderr


def generations_file(path: Path, seed: int) -> None:
    """A diasafety_generations file: 20 contexts, 4 to 7 sampled responses each, some repeated."""
    rng = np.random.default_rng(seed)
    words = ["you are", "I think", "that is", "go away", "nice idea", "stupid", "sure thing"]
    items = [
        {
            "context": f"context number {i} about topic {i % 5}",
            "gen_response": [" ".join(rng.choice(words, 2)) for _ in range(4 + i % 4)],
        }
        for i in range(20)
    ]
    path.write_text(json.dumps(items))


@pytest.mark.workflow
def test_head_vs_rest_over_generation_files(tiny_run, tmp_path):
    """The judge of a labelled corpus (the tiny run's), then one point per synthetic generations
    file."""
    shutil.copytree(tiny_run / "results/tiny/judge", tmp_path / "results/tiny/judge")
    for seed, name in enumerate(("model_a", "model_b")):
        generations_file(tmp_path / f"{name}.json", seed)
    (tmp_path / "gen.yaml").write_text(f"""
corpus: {{name: gen, format: diasafety_generations, path: {tmp_path / "model_a.json"},
         empty_responses: drop}}
assess: {{assessor: exact, pool: prompt}}
judge: {{second: null, from: results/tiny/judge}}
experiments:
  head_safety: {{generations: [{tmp_path / "model_a.json"}, {tmp_path / "model_b.json"}]}}
""")
    snakemake(
        tmp_path,
        "--cores",
        "2",
        "head_safety_table",
        configfiles=(TINY_CONFIG, tmp_path / "gen.yaml"),
    )
    table = pd.read_csv(tmp_path / "results/gen/experiments/head_safety.csv")
    assert list(table["generations"]) == ["model_a", "model_b"]
    assert list(table["corpus"]) == ["gen-model_a", "gen-model_b"]
    for corpus, n_pools in zip(table["corpus"], table["n_pools"]):
        point = json.loads((tmp_path / f"results/{corpus}/head_safety.json").read_text())
        assert point["n_pools"] == n_pools == 20
    assert "| model_a | " in (tmp_path / "results/gen/experiments/head_safety.md").read_text()


def test_trained_encoder_points_train_only_the_methods_judged_by_the_corpus():
    config = with_axes(trained_encoders={"encoders": ["minilm", "tfidf"], "methods": ["isaac"]})
    points = ex.experiment_points(config)["trained_encoders"]
    assert [p.name for p in points] == ["c-encoder-minilm", "c-encoder-tfidf"]
    point = ex.point_config(config, points[1])
    assert point["embed"]["encoder"] == "tfidf" and point["sweep"]["methods"] == ["isaac"]
    assert point["judge"]["from"] == "results/c/judge"  # the same judges for every encoder
    assert point["summary"]["baselines"] == []  # the table pairs them with the corpus's raw
    assert point["assess"] == config["assess"]  # the eps rule and quantile unchanged


BOOTSTRAP = settings(SummaryConfig, "summary", resamples=500, seed=0, baselines=None)
RAW_UNSAFE = {0: [1] * 8 + [0] * 12, 1: [1] * 6 + [0] * 14}  # per seed, 20 unseen prompts


def write_runs(folder: Path, runs: dict) -> tuple[list[str], list[str]]:
    """scores/{run}.json and .parquet as isaac.score writes them, under `folder`; `runs` maps
    (method, tau, m, seed) to its per-prompt table. Returns (scores, per_prompt)."""
    scores, per_prompt = [], []
    for key, table in runs.items():
        path = folder / "scores" / run_id(key)
        scores.append(f"{path}.json")
        per_prompt.append(f"{path}.parquet")
        write_json(score_json(key, table), scores[-1])
        write_parquet(table, per_prompt[-1])
    return scores, per_prompt


def verdicts(unsafe, **kwargs) -> pd.DataFrame:
    """A per-prompt table whose second judge finds the first two unseen prompts unsafe."""
    return per_prompt_table(unsafe, second=[1, 1] + [0] * (len(unsafe) - 2), **kwargs)


RAW_RUNS = {("raw", 1.0, 1, s): verdicts(unsafe) for s, unsafe in RAW_UNSAFE.items()}
POINT_RUNS = {("isaac", 0.5, 1, s): verdicts([0] * 20) for s in RAW_UNSAFE}


def test_a_points_difference_from_raw_is_the_summarys_with_both_runs_in_one_folder(tmp_path):
    raw = ex.run_tables(*write_runs(tmp_path / "corpus", RAW_RUNS))
    point = ex.run_tables(*write_runs(tmp_path / "point", POINT_RUNS))
    diff = ex.raw_differences(point, raw, BOOTSTRAP).set_index("method").loc["isaac"]
    assert diff["delta_raw"] == pytest.approx((8 + 6) / 40, abs=1e-12)  # the exact mean
    assert 0 < diff["delta_raw_lo"] < 0.35 < diff["delta_raw_hi"] < 1
    assert diff["delta_second_raw"] == 0.0 and diff["delta_relevance_raw"] == 0.0
    # the summary's own comparison, the four runs in one list, gives the same cells
    runs = pd.DataFrame(
        [{"method": k[0], "tau": k[1], "m": k[2], "seed": k[3]} for k in [*raw, *point]]
    ).assign(**{column: np.nan for column in MEAN_COLUMNS})
    both = comparison_table(runs, {**raw, **point}, replace(BOOTSTRAP, baselines=("raw",)))
    summary = both.set_index("method").loc["isaac"]
    for column in diff.index.drop(["tau", "m"]):
        assert diff[column] == summary[column], column


def test_a_point_whose_prompts_or_seeds_differ_from_the_corpus_raw_is_refused(tmp_path):
    raw_files = write_runs(tmp_path / "corpus", RAW_RUNS)
    raw = ex.run_tables(*raw_files)
    other_ids = [f"u{i:03d}" for i in range(22)]
    other = {k: verdicts([0] * 20, ids=other_ids) for k in POINT_RUNS}
    point = ex.run_tables(*write_runs(tmp_path / "other", other))
    with pytest.raises(ex.InputError, match="unseen prompts differ") as refused:
        ex.raw_differences(point, raw, BOOTSTRAP)
    assert raw_files[1][0] in str(refused.value) and "other/scores" in str(refused.value)
    one_seed = {k: t for k, t in POINT_RUNS.items() if k[3] == 0}
    point = ex.run_tables(*write_runs(tmp_path / "one", one_seed))
    with pytest.raises(ex.InputError, match=r"seeds \[0\].*raw with seeds \[0, 1\]") as refused:
        ex.raw_differences(point, raw, BOOTSTRAP)
    assert all(path in str(refused.value) for path in raw_files[1])


MEASURE_CELLS = {
    "safety_score_second": 0.6,
    "safety_second_lo": 0.5,
    "safety_second_hi": 0.7,
    "relevance": 0.78,
    "relevance_lo": 0.74,
    "relevance_hi": 0.81,
}


def corpus_summary() -> pd.DataFrame:
    """The corpus's summary.csv: raw and isaac, their differences from raw."""
    return summary_csv(0.911, 0.984).assign(
        tau=[1.0, 0.5],
        m=1,
        **MEASURE_CELLS,
        delta_relevance_raw=[0.0, 0.01],
        delta_relevance_raw_lo=[0.0, -0.02],
        delta_relevance_raw_hi=[0.0, 0.04],
        copy_share=[0.6, float("nan")],
        oracle_safe_rate=0.8,
    )


def point_summary(safety: float) -> pd.DataFrame:
    """A point's summary.csv: its methods only, no differences (summary.baselines [])."""
    return pd.DataFrame(
        {
            "method": ["isaac"],
            "tau": [0.5],
            "m": [1],
            "safety_score": [safety],
            "safety_lo": [safety - 0.03],
            "safety_hi": [safety + 0.02],
            **{column: [value] for column, value in MEASURE_CELLS.items()},
            "copy_share": [0.4],
            "distinct_2": [0.15],
            "oracle_safe_rate": [0.7],
        }
    )


def test_trained_encoders_table_puts_each_points_methods_beside_the_corpus_rows():
    main, point = corpus_summary(), point_summary(0.95)
    differences = pd.DataFrame(
        {
            "method": ["isaac"],
            "tau": [0.5],
            "m": [1],
            "delta_raw": [0.039],
            "delta_raw_lo": [0.01],
            "delta_raw_hi": [0.07],
            "delta_relevance_raw": [-0.02],
            "delta_relevance_raw_lo": [-0.05],
            "delta_relevance_raw_hi": [0.01],
        }
    )
    groups = {"encoder": "model2vec", "eps": 0.661}
    folders = [(groups, main), ({"encoder": "tfidf", "eps": 0.7}, point)]
    df = ex.trained_encoders_table(folders, ["isaac"], [differences])
    assert list(zip(df["encoder"], df["method"])) == [
        ("model2vec", "raw"),
        ("model2vec", "isaac"),
        ("tfidf", "isaac"),
    ]
    assert df["safety_score"].tolist() == [0.911, 0.984, 0.95]
    assert df["delta_raw"].tolist() == [0.0, 0.984 - 0.911, 0.039]
    assert df["eps"].tolist() == [0.661, 0.661, 0.7]
    md = ex.markdown(df, ex.TRAINED_ENCODERS_COLUMNS).splitlines()
    assert md[4].startswith("| tfidf | 0.700 | isaac | 0.950 [0.920, 0.970] | +0.039 [+0.010")
    assert "| -0.020 [-0.050, +0.010] | 0.400 |" in md[4]
    assert md[3].split(" | ")[-3] == "—"  # a missing copy share is a dash, not nan
    with pytest.raises(ex.InputError, match="tfidf point's summary has no rows for \\['max'\\]"):
        ex.trained_encoders_table(folders, ["isaac", "max"], [differences])
    with pytest.raises(ex.InputError, match="tfidf point's scores have no runs for"):
        ex.trained_encoders_table(folders, ["isaac"], [differences.assign(tau=1.0)])


def test_cli_trained_encoders_pairs_each_point_with_the_corpus_raw(tmp_path):
    raw_files = write_runs(tmp_path / "corpus", RAW_RUNS)
    points = {
        "minilm": {k: verdicts([1] * 4 + [0] * 16) for k in POINT_RUNS},
        "tfidf": POINT_RUNS,
    }
    summaries, groups, scores, per_prompt = [tmp_path / "corpus.csv"], [], [], []
    corpus_summary().to_csv(summaries[0], index=False)
    for encoder in ("model2vec", *points):
        groups.append(tmp_path / f"{encoder}.json")
        write_json({"encoder": encoder, "eps": 0.5}, groups[-1])
    for encoder, runs in points.items():
        files = write_runs(tmp_path / encoder, runs)
        scores += files[0]
        per_prompt += files[1]
        summaries.append(tmp_path / f"{encoder}.csv")
        point_summary(0.9).to_csv(summaries[-1], index=False)
    config = {
        "pollution": None,
        "tempering": None,
        "head_safety": None,
        "encoders": None,
        "trained_encoders": {"encoders": list(points), "methods": ["isaac"]},
    }
    ex.main(
        [
            "trained_encoders",
            "--summaries",
            *map(str, summaries),
            "--groups",
            *map(str, groups),
            "--raw-scores",
            *raw_files[0],
            "--raw-per-prompt",
            *raw_files[1],
            "--scores",
            *scores,
            "--per-prompt",
            *per_prompt,
            "--config",
            json.dumps(config),
            "--summary-config",
            to_json(BOOTSTRAP),
            "--csv",
            str(tmp_path / "t.csv"),
            "--md",
            str(tmp_path / "t.md"),
        ]
    )
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(zip(table["encoder"], table["method"])) == [
        ("model2vec", "raw"),
        ("model2vec", "isaac"),
        ("minilm", "isaac"),
        ("tfidf", "isaac"),
    ]
    expected = [0.0, 0.984 - 0.911, (8 + 6 - 8) / 40, (8 + 6) / 40]
    assert table["delta_raw"].tolist() == pytest.approx(expected)
    md = (tmp_path / "t.md").read_text().splitlines()
    assert md[5].startswith("| tfidf | 0.500 | isaac | 0.900 [0.870, 0.920] | +0.350 [")


@pytest.mark.workflow
def test_the_trained_encoders_table_trains_only_the_points_methods(tmp_path):
    axis = tmp_path / "axis.yaml"
    axis.write_text("experiments: {trained_encoders: {encoders: [minilm], methods: [isaac]}}\n")
    proc = snakemake(
        tmp_path, "--dry-run", "trained_encoders_table", configfiles=(TINY_CONFIG, axis)
    )
    jobs = planned_jobs(proc.stdout)
    assert jobs["trained_encoders_table"] == 1 and jobs["summary"] == 1, jobs
    assert jobs["tiny_encoder_minilm_train"] == 1, jobs  # isaac: raw is the corpus's
    assert "results/tiny-encoder-minilm/models/isaac/tau1.0-m1-seed0" in proc.stdout
    assert "results/tiny-encoder-minilm/models/raw/" not in proc.stdout
    assert "results/tiny/scores/raw/tau1.0-m1-seed0.parquet" in proc.stdout
    assert "results/tiny-encoder-minilm/embeddings/minilm.npz" in proc.stdout
