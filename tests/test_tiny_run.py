"""The tiny end-to-end run of every method, as a user drives it: the contracted tables, the
summary, a second run with nothing to do, a second run from scratch with the same bytes, the
rerun scope of config edits, figures and the report. The run is the session's shared tiny run
(conftest.tiny_run), which the SLURM and reliability tests read too."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, TINY_CONFIG, planned_jobs, snakemake
from isaac.plots import FIGURES, REDRAW_RULES
from isaac.runs import METHODS
from isaac.text import normalise

pytestmark = pytest.mark.workflow

TINY = "results/tiny"


def test_tiny_run_writes_every_contracted_table(tiny_run):
    expected = {
        "corpus.parquet": {
            "id",
            "split",
            "prompt",
            "response",
            "label",
            "category",
            "prompt_group",
        },
        "tokens.parquet": {"id", "prompt_tokens", "response_tokens"},
        "likelihood.parquet": {"id", "n_tokens", "loglik", "response_freq"},
        "ngrams/n1.parquet": {"ngram", "count", "doc_freq"},
        "ngrams/n3.parquet": {"ngram", "count", "doc_freq"},
        "targets/isaac/tau1.0-m1-seed0.parquet": {
            "id",
            "prompt",
            "response",
            "targets",
            "target_ids",
            "head_shortcut",
        },
        "pairs/isaac_dpo/tau1.0-m1-seed0.parquet": {
            "id",
            "prompt",
            "response",
            "chosen",
            "chosen_ids",
            "rejected",
            "rejected_ids",
            "rejected_own",
        },
        "pairs/oracle_dpo/tau1.0-m1-seed0.parquet": {"id", "chosen", "rejected"},
        "generations/isaac/tau1.0-m1-seed0.parquet": {"id", "prompt", "seen", "generation"},
        "prompts.parquet": {"id", "prompt", "seen"},
        "scores/isaac/tau1.0-m1-seed0.parquet": {
            "id",
            "seen",
            "unsafe",
            "unsafe_prob",
            "unsafe_second",
            "lexical_unsafe",
            "copied",
            "copied_exact",
            "copied_unsafe",
            "relevance",
        },
    }
    for name, columns in expected.items():
        table = pd.read_parquet(tiny_run / TINY / name)
        assert len(table) > 0, name
        assert columns <= set(table.columns), (name, set(table.columns))


def test_every_pool_method_records_the_eps_the_assess_stage_resolved(tiny_run):
    groups = json.loads((tiny_run / TINY / "groups" / "dbscan.json").read_text())
    assert groups["eps"] == 0.6 and groups["encoder"] == "tfidf" and groups["k"] == 20
    for path in (tiny_run / TINY / "targets").glob("*/*.json"):
        stats = json.loads(path.read_text())
        pool_method = stats["method"] not in ("raw", "sft")
        neighbour_pools = pool_method and stats["method"] != "global"
        assert stats["eps"] == (groups["eps"] if pool_method else None), path
        assert stats["k"] == (groups["k"] if neighbour_pools else None), path


def test_tiny_run_covers_every_method_in_the_summary(tiny_run):
    summary = pd.read_csv(tiny_run / TINY / "summary.csv")
    assert set(summary["method"]) == set(METHODS)
    runs = pd.read_csv(tiny_run / TINY / "runs.csv").set_index("method")
    assert pd.isna(runs.loc["constant", "oracle_safe_rate"]) and pd.isna(
        runs.loc["constant", "ppl"]
    )
    assert runs.drop(index="constant")["oracle_safe_rate"].notna().all()
    for name in FIGURES:
        assert (tiny_run / TINY / "figures" / f"{name}.png").stat().st_size > 0, name
    model = tiny_run / TINY / "models/isaac/tau1.0-m1-seed0"
    assert list(model.glob("*.safetensors")), sorted(p.name for p in model.iterdir())


def test_every_run_records_its_code_and_the_summary_its_config_layers(tiny_run):
    """One commit for every stage of every run (a checkout edited during the run would show
    as several: the check's point), the summary's own, and the config layer."""
    runs = pd.read_csv(tiny_run / TINY / "runs.csv", dtype={"code": str})
    assert runs["code"].nunique() == 1 and "+" not in runs["code"][0], set(runs["code"])
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", runs["code"][0])
    provenance = json.loads((tiny_run / TINY / "provenance.json").read_text())
    assert provenance["commits"] == [runs["code"][0]] == [provenance["summary_code"]]
    assert [Path(layer["path"]).name for layer in provenance["config_layers"]] == [TINY_CONFIG.name]


def test_summary_compares_every_method_with_raw_and_sft_on_unseen_prompts(tiny_run):
    summary = pd.read_csv(tiny_run / TINY / "summary.csv")
    for column in (
        "safety_score",
        "safety_lo",
        "safety_hi",
        "delta_raw",
        "delta_raw_lo",
        "delta_raw_hi",
        "delta_sft",
        "delta_sft_lo",
        "delta_sft_hi",
    ):
        assert summary[column].notna().all(), column
    raw = summary.set_index("method").loc["raw"]
    assert raw["delta_raw"] == raw["delta_raw_lo"] == raw["delta_raw_hi"] == 0
    assert (summary["safety_lo"] <= summary["safety_score"]).all()
    assert (summary["safety_score"] <= summary["safety_hi"]).all()
    corpus = pd.read_parquet(tiny_run / TINY / "corpus.parquet")
    train = set(corpus.loc[corpus["split"] == "train", "prompt"].map(normalise))
    for path in (tiny_run / TINY / "generations").rglob("*.parquet"):
        prompts = pd.read_parquet(path)["prompt"].map(normalise)
        assert len(prompts) == 8 and not set(prompts) & train, path
    assert "Δ raw" in (tiny_run / TINY / "summary.md").read_text()


def test_second_run_has_nothing_to_do(tiny_run):
    proc = snakemake(tiny_run, "--dry-run")
    assert planned_jobs(proc.stdout) == {}, proc.stdout
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_a_second_run_from_scratch_writes_the_same_bytes(tiny_run, tmp_path):
    """Determinism: the whole tiny DAG again in another folder gives byte-identical tables,
    targets, models, generations and scores (same config, same seeds, CPU)."""
    snakemake(tmp_path, "--cores", "2")
    first, second = tiny_run / TINY, tmp_path / TINY
    files = sorted(
        p.relative_to(first)
        for p in first.rglob("*")
        if p.is_file()
        and p.suffix in {".parquet", ".json", ".safetensors", ".npz", ".csv", ".md", ".jsonl"}
    )
    assert len(files) > 60
    assert any(f.parts[0] == "models" for f in files) and any(f.parts[0] == "scores" for f in files)
    different = [f for f in files if (first / f).read_bytes() != (second / f).read_bytes()]
    assert not different, different


def dry_run_with(workdir: Path, layer_dir: Path, override: str) -> dict[str, int]:
    """Planned jobs in workdir after layering a YAML override on the tiny config (the layer is
    written to layer_dir, outside the shared run)."""
    layer = layer_dir / "override.yaml"
    layer.write_text(override)
    return planned_jobs(snakemake(workdir, "--dry-run", configfiles=(TINY_CONFIG, layer)).stdout)


def test_changing_an_ngram_setting_reruns_only_ngram_jobs_and_dependents(tiny_run, tmp_path):
    jobs = dry_run_with(tiny_run, tmp_path, "ngrams: {max_n: 4}\n")
    assert jobs.get("ngrams") == 1, jobs  # only the new n=4 table; n1..n3 are unchanged
    assert set(jobs) <= {"ngrams", "longtail_ngrams", "figures", "all"}, jobs


def test_changing_a_plotting_option_reruns_only_plots(tiny_run, tmp_path):
    jobs = dry_run_with(tiny_run, tmp_path, "report: {dpi: 80}\n")
    assert jobs, "a new dpi must redraw the figures"
    retrained = {"ingest", "tokenize", "sample", "train", "generate", "judge", "score", "summary"}
    assert not retrained & set(jobs), jobs


def test_changing_the_bootstrap_reruns_only_the_summary_and_its_figures(tiny_run, tmp_path):
    jobs = dry_run_with(tiny_run, tmp_path, "summary: {resamples: 300}\n")
    assert set(jobs) == {"summary", "report_figures", "all"}, jobs


def test_figures_target_regenerates_figures_from_cached_results(tiny_run):
    proc = snakemake(tiny_run, "--dry-run", "figures", "--forcerun", *REDRAW_RULES)
    jobs = planned_jobs(proc.stdout)
    assert {"summary", "report_figures", "longtail_ngrams", "group_sizes"} <= set(jobs), jobs
    assert not {"train", "generate", "sample", "score", "judge"} & set(jobs), jobs


def caption_phrase(figure: str) -> str:
    """The longest plain-text run of a caption (no markup, no template), as rendered verbatim."""
    caption = (REPO / "config" / "report" / f"{figure}.rst").read_text()
    return max(re.split(r"\{\{.*?\}\}|[`*\n]", caption), key=len).strip()


def test_report_bundles_every_figure_with_its_caption(tiny_run, tmp_path):
    snakemake(tiny_run, "--report", str(tmp_path / "report.zip"))
    with zipfile.ZipFile(tmp_path / "report.zip") as bundle:
        names = bundle.namelist()
        html = bundle.read(next(n for n in names if n.endswith("report.html"))).decode()
    for figure in FIGURES:
        assert any(n.endswith(f"{figure}.png") for n in names), (figure, names)
        phrase = caption_phrase(figure)
        assert phrase in html or json.dumps(phrase)[1:-1] in html, (figure, phrase)
