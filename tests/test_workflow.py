"""The workflow as a user drives it: lint, format, dry runs, settings refused before any job, and
CI-sized end-to-end runs of SmolLM2 and of head vs rest (the tiny run of every method:
test_tiny_run.py)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import (
    DEMO_CONFIG,
    REPO,
    SNAKEMAKE,
    TINY_CONFIG,
    planned_jobs,
    schema_defaults,
    snakemake,
)
from isaac.runs import MODEL_FREE_METHODS, PAIR_METHODS

pytestmark = pytest.mark.workflow

TINY = "results/tiny"


def test_lint_is_clean():
    proc = subprocess.run([str(SNAKEMAKE), "--lint"], cwd=REPO, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Lints for" not in output, output


def test_snakefmt_check_is_clean():
    snakefmt = SNAKEMAKE.with_name("snakefmt")
    proc = subprocess.run(
        [str(snakefmt), "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_is_clean(command):
    """The Python style (pyproject.toml, [tool.ruff]): lint and format, beside snakefmt."""
    ruff = SNAKEMAKE.with_name("ruff")
    proc = subprocess.run(
        [str(ruff), *command, "src", "tests", "bench"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_of_the_demo_default(tmp_path):
    proc = snakemake(tmp_path, "--dry-run", configfiles=(DEMO_CONFIG,))
    jobs = planned_jobs(proc.stdout)
    for rule in ("ingest", "tokenize", "ngrams", "likelihood", "sample", "train", "score"):
        assert jobs.get(rule, 0) >= 1, (rule, jobs)
    # One training job per trained method of the demo sweep (1 tau, 1 m, 1 seed): fine-tuning
    # for the 8 that sample targets, DPO for the 2 pair methods; constant's replies come from
    # its own rule, global's groups from theirs.
    assert jobs["train"] == 8 and jobs["train_dpo"] == 2 and jobs["pairs"] == 2, jobs
    assert jobs["constant"] == 1 and jobs["assess_global"] == 1, jobs
    assert jobs["score"] == 11, jobs


def test_sample_all_samples_the_methods_with_targets_only(tmp_path):
    proc = snakemake(tmp_path, "--dry-run", "sample_all", configfiles=(DEMO_CONFIG,))
    jobs = planned_jobs(proc.stdout)
    assert jobs["sample"] >= 8 and "constant" not in jobs and "train" not in jobs, jobs


def job_settings(dry_run_output: str, module: str) -> dict:
    """The --config of the first isaac.<module> command a dry run prints."""
    command = next(line for line in dry_run_output.splitlines() if f" -m isaac.{module} " in line)
    words = shlex.split(command)
    return json.loads(words[words.index("--config") + 1])


def test_the_demo_runs_without_config_files_and_a_config_file_inherits_nothing_from_it(
    tmp_path, diasafety_dir
):
    demo = snakemake(tmp_path, "--dry-run", "--printshellcmds", configfiles=()).stdout
    assert "results/demo/neighbours/tfidf-k50.parquet" in demo
    assert job_settings(demo, "assess")["eps"] == 0.6
    # config/diasafety.yaml on the schema's defaults alone: k 150, the eps rule, not the demo's
    layer = tmp_path / "path.yaml"
    layer.write_text(f"corpus: {{path: {json.dumps(str(diasafety_dir))}}}\n")
    dia = snakemake(
        tmp_path,
        "--dry-run",
        "--printshellcmds",
        configfiles=(REPO / "config" / "diasafety.yaml", layer),
    ).stdout
    assert "results/diasafety/neighbours/model2vec-k150.parquet" in dia
    assert job_settings(dia, "neighbours")["k"] == 150 and "embeddings/tfidf" not in dia
    assess = job_settings(dia, "assess")
    assert (
        assess["eps"] is None
        and assess["eps_quantile"] == schema_defaults("assess")["eps_quantile"]
    )
    methods = schema_defaults("sweep")["methods"]
    jobs = planned_jobs(dia)
    assert jobs["train"] + jobs["train_dpo"] == len(set(methods) - set(MODEL_FREE_METHODS))
    assert jobs["train_dpo"] == len(PAIR_METHODS) and jobs["pairs"] == len(PAIR_METHODS)
    assert {"constant", "global"} <= set(methods)


def test_invalid_config_is_rejected_with_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_CONFIG.read_text() + "\nsurprise_key: 1\n")
    proc = snakemake(tmp_path, "--dry-run", configfiles=(bad,), check=False)
    assert proc.returncode != 0
    assert "surprise_key" in proc.stdout + proc.stderr


def tiny_with(workdir: Path, layer: str) -> tuple[Path, Path]:
    """The tiny config with a YAML layer on top, as --configfile values."""
    path = workdir / "layer.yaml"
    path.write_text(layer + "\n")
    return TINY_CONFIG, path


@pytest.mark.parametrize(
    "layer, key",
    [
        ("sweep: {taus: [-1.0]}", "sweep.taus[0]"),
        ("sweep: {taus: [0]}", "sweep.taus[0]"),
        ("sweep: {taus: [1.0e+20]}", "sweep.taus[0]"),
        ("sweep: {taus: [.inf]}", "sweep.taus[0]"),
        ("sweep: {taus: [1.0, .nan]}", "sweep.taus[1]"),
        ("sweep: {taus: [1, 1.0]}", "sweep.taus"),
        ("sweep: {ms: [0]}", "sweep.ms[0]"),
        ("sweep: {seeds: []}", "sweep.seeds"),
        ("sweep: {seeds: [-1]}", "sweep.seeds[0]"),
        ("sweep: {seeds: [4294967296]}", "sweep.seeds[0]"),
        ("sweep: {seeds: [0, 1, 0]}", "sweep.seeds"),
        ("sweep: {seeds: [0, 1000]}\ntrain: {rounds: 2}", "sweep.seeds: seeds 0 and 1000"),
        ("sweep: {seeds: [4294967000]}\ntrain: {rounds: 2}", "sweep.seeds: seed 4294967000"),
        (
            "sweep: {seeds: [0, 2000]}\nexperiments: {tempering: {rounds: [3]}}",
            "sweep.seeds: seeds 0 and 2000",
        ),
        ("sweep: {taus: []}", "sweep.taus"),
        ("sweep: {ms: []}", "sweep.ms"),
        ("sweep: {methods: []}", "sweep.methods"),
        ("sweep: {methods: [isaac, best]}", "sweep.methods[1]"),
        ("sweep: {methods: [raw, sft, raw]}", "sweep.methods"),
        ("corpus: {demo: {seed: -1}}", "corpus.demo.seed"),
        ("judge: {cross_encoder: {seed: 4294967296}}", "judge.cross_encoder.seed"),
        ("neighbours: {k: 0}", "neighbours.k"),
        ("neighbours: {index: annoy}", "neighbours.index"),
        ("assess: {assessor: kmeans}", "assess.assessor"),
        ("assess: {eps_quantile: 1.5}", "assess.eps_quantile"),
        ("embed: {encoder: no-such-encoder}", "embed.encoder"),
        ("corpus: {format: jsonl, path: no/such/file.jsonl}", "corpus.path"),
        ("corpus: {name: ..}", "corpus.name"),
        ("corpus: {name: .}", "corpus.name"),
        ("corpus: {name: .hidden}", "corpus.name"),
        ('corpus: {name: "tiny\\n"}', "corpus.name"),
        (f"corpus: {{name: {'a' * 300}}}", "corpus.name"),
        ("corpus: {pollute: {rate: 1.0}}", "corpus.pollute.rate"),
        ("corpus: {fields: {label: ''}}", "corpus.fields.label"),
        ("summary: {baselines: [isaac]}\nsweep: {taus: [0.3]}", "summary.baselines"),
        ("judge: {from: results/tiny/judge}", "judge.from"),
        ("judge: {from: ./results/tiny/judge/}", "judge.from"),
        ("judge: {from: results/tiny/judge/heldout}", "judge.from"),
        ('judge: {from: "elsewhere/{corpus}/judge"}', "judge.from"),
    ],
)
def test_bad_settings_are_refused_before_any_job_with_the_key(tmp_path, layer, key):
    proc = snakemake(tmp_path, "--dry-run", configfiles=tiny_with(tmp_path, layer), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    (line,) = [line for line in output.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: {key}"), output
    assert "Traceback" not in output, output
    assert not (tmp_path / "results").exists()


def test_an_encoder_folder_whose_name_cannot_name_a_file_is_refused(tmp_path):
    braces, space = tmp_path / "models" / "mini{lm}", tmp_path / "models" / "mini lm"
    for folder in braces, space:
        folder.mkdir(parents=True)
    layers = tiny_with(tmp_path, f"embed: {{encoder: {json.dumps(str(braces))}}}")
    proc = snakemake(tmp_path, "--dry-run", configfiles=layers, check=False)
    assert proc.returncode == 2
    assert f"error: embed.encoder: '{braces}' holds a brace" in proc.stderr
    layers = tiny_with(tmp_path, f"embed: {{encoder: {json.dumps(str(space))}}}")
    proc = snakemake(tmp_path, "--dry-run", configfiles=layers, check=False)
    assert proc.returncode == 2
    assert "error: embed.encoder: the folder name 'mini lm' names the embeddings" in proc.stderr
    # embed.name names the file instead: planned
    layers = tiny_with(tmp_path, f"embed: {{encoder: {json.dumps(str(space))}, name: minilm2}}")
    proc = snakemake(tmp_path, "--dry-run", configfiles=layers)
    assert f"{TINY}/embeddings/minilm2.npz" in proc.stdout
    assert not (tmp_path / "results").exists()


def test_a_config_file_that_gives_a_key_twice_is_refused_naming_it(tmp_path):
    layer = tmp_path / "layer.yaml"
    layer.write_text("sweep: {seeds: [0]}\ntrain: {epochs: 1}\nsweep: {seeds: [1]}\n")
    proc = snakemake(tmp_path, "--dry-run", configfiles=(TINY_CONFIG, layer), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = f"error: {layer}: line 3: key 'sweep' given again (first on line 1)"
    assert message in proc.stderr.splitlines()[-1], proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("content", ["", "- a list\n", None], ids=["empty", "list", "missing"])
def test_a_config_file_snakemake_cannot_read_stops_it_before_the_workflow(tmp_path, content):
    """Snakemake reads --configfile before the Snakefile runs, so its own message stands."""
    layer = tmp_path / "layer.yaml"
    if content is not None:
        layer.write_text(content)
    proc = snakemake(tmp_path, "--dry-run", configfiles=(TINY_CONFIG, layer), check=False)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    expected = "with keys at top level" if content is not None else f"'{layer}'"
    assert expected in output, output
    assert not (tmp_path / "results").exists() and not (tmp_path / ".snakemake").exists()


def test_embed_shards_are_separate_jobs_gathered_into_the_embeddings_file(tmp_path):
    layers = tiny_with(tmp_path, "embed: {encoder: minilm, shards: 3}")
    proc = snakemake(tmp_path, "--dry-run", "--printshellcmds", configfiles=layers)
    assert planned_jobs(proc.stdout)["embed_shard"] == 3
    shards = [f"{TINY}/embeddings/shards/minilm-{i}-of-3.npz" for i in range(3)]
    assert f"--gather {' '.join(shards)} --out {TINY}/embeddings/minilm.npz" in proc.stdout
    # tfidf is fitted on the whole corpus: one job, whatever embed.shards says
    layers = tiny_with(tmp_path, "embed: {encoder: tfidf, shards: 3}")
    jobs = planned_jobs(snakemake(tmp_path, "--dry-run", configfiles=layers).stdout)
    assert jobs["embed"] == 1 and "embed_shard" not in jobs, jobs


def test_tempering_trains_every_stage_on_its_own_draw_of_targets(tmp_path):
    layers = tiny_with(
        tmp_path, "train: {rounds: 3}\nsweep: {methods: [raw, isaac]}\nsummary: {baselines: [raw]}"
    )
    proc = snakemake(tmp_path, "--dry-run", "--printshellcmds", configfiles=layers)
    jobs = planned_jobs(proc.stdout)
    assert jobs["train"] == 2 and jobs["train_round"] == 4, jobs
    out = proc.stdout
    for stage, seed in ((1, 0), (2, 1000)):
        assert f"--targets {TINY}/targets/isaac/tau1.0-m1-seed{seed}.parquet" in out, stage
    assert f"--init={TINY}/rounds/isaac/tau1.0-m1-seed0/round2" in out  # the final, round 3
    assert f"--out {TINY}/rounds/isaac/tau1.0-m1-seed0/round2" in out
    assert f"--targets {TINY}/targets/isaac/tau1.0-m1-seed2000.parquet" in out


def test_hnsw_neighbours_are_a_file_of_their_own_made_with_the_jobs_threads(tmp_path):
    proc = snakemake(
        tmp_path,
        "--dry-run",
        "-p",
        "--cores",
        "2",
        configfiles=tiny_with(tmp_path, "neighbours: {index: hnsw}"),
    )
    command = next(line for line in proc.stdout.splitlines() if "-m isaac.neighbours" in line)
    assert "-hnsw.parquet" in command and '"index": "hnsw"' in command, command
    assert "--threads 2" in command, command


def judge_commands(workdir: Path, layer: str) -> dict[str, str]:
    """{judge output folder: its job's command} of a dry run of the tiny config plus `layer`."""
    proc = snakemake(workdir, "--dry-run", "-p", configfiles=tiny_with(workdir, layer))
    lines = [line for line in proc.stdout.splitlines() if "-m isaac.judge" in line]
    return {re.search(r"--out (\S+)", line).group(1): line for line in lines}


def test_the_independent_judge_has_its_own_folder_and_only_cross_encoders_read_its_settings(
    tmp_path,
):
    layer = "judge: {features: tfidf-lr, second: cross-minilm, cross_encoder: {epochs: %d}}"
    first, second = judge_commands(tmp_path, layer % 1), judge_commands(tmp_path, layer % 3)
    primary, independent = "results/tiny/judge/tfidf-lr", "results/tiny/judge/heldout/cross-minilm"
    assert set(first) == set(second) == {primary, independent}
    assert "--fit train" in first[primary] and "--fit heldout" in first[independent]
    assert """'{"cross_encoder": null}'""" in first[primary]
    assert first[primary] == second[primary]  # unchanged: editing epochs reruns no tf-idf judge
    assert '"epochs": 1' in first[independent] and '"epochs": 3' in second[independent]
    # judge.second may equal judge.features: the same features, fitted twice, in two folders
    same = judge_commands(tmp_path, "judge: {features: tfidf-lr, second: tfidf-lr}")
    assert set(same) == {primary, "results/tiny/judge/heldout/tfidf-lr"}


def test_judge_from_copies_the_independent_judge_from_its_heldout_folder(tmp_path):
    source = tmp_path / "other" / "judge"
    for folder in ("tfidf-lr", "heldout/minilm-lr"):
        (source / folder).mkdir(parents=True)
    commands = judge_commands(tmp_path, f"judge: {{second: minilm-lr, from: {source}}}")
    assert f"--from={source}/tfidf-lr " in commands["results/tiny/judge/tfidf-lr"]
    assert f"--from={source}/heldout/minilm-lr " in commands["results/tiny/judge/heldout/minilm-lr"]


def test_a_baseline_outside_the_sweep_is_refused_before_any_job(tmp_path):
    extra = tmp_path / "no_raw.yaml"
    extra.write_text("sweep: {methods: [sft, isaac]}\n")
    proc = snakemake(tmp_path, "--dry-run", configfiles=(TINY_CONFIG, extra), check=False)
    assert proc.returncode != 0
    assert "summary.baselines: raw not in sweep.methods" in proc.stdout + proc.stderr


def test_a_corpus_without_test_prompts_fails_before_training(tmp_path):
    rows = [{"prompt": f"p{i}", "response": f"r{i % 3}", "label": "safe"} for i in range(30)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra = tmp_path / "no_test.yaml"
    extra.write_text(f"corpus: {{name: notest, format: jsonl, path: {tmp_path / 'train.jsonl'}}}\n")
    target = "results/notest/models/raw/tau1.0-m1-seed0"
    proc = snakemake(
        tmp_path, "--cores", "2", target, configfiles=(TINY_CONFIG, extra), check=False
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "notest" / "prompts.log").read_text()
    assert "no rows with split 'test'" in log, log
    assert not (tmp_path / "results" / "notest" / "models").exists()


@pytest.mark.pretrained
def test_smollm2_runs_end_to_end_at_cpu_size(tmp_path):
    """generator_base -> LoRA train -> generate -> score -> summary with the bundled SmolLM2."""
    layers = (TINY_CONFIG, REPO / "tests" / "config" / "smollm2.yaml")
    snakemake(tmp_path, "--cores", "2", "results/tiny-smollm2/summary.csv", configfiles=layers)
    results = tmp_path / "results" / "tiny-smollm2"
    summary = pd.read_csv(results / "summary.csv").set_index("method")
    assert sorted(summary.index) == ["isaac", "raw"]
    assert summary["safety_score"].between(0, 1).all() and summary["ppl_safe"].gt(1).all()
    assert (results / "generator_base" / "model.safetensors").is_file()
    fmt = json.loads((results / "models/isaac/tau1.0-m1-seed0/isaac_generator.json").read_text())
    assert fmt["kind"] == "smollm2"
    # two rounds: the final model was trained on from round 1 (LoRA added again to its weights)
    stage1 = results / "rounds/isaac/tau1.0-m1-seed0/round1"
    assert json.loads((stage1 / "isaac_generator.json").read_text()) == fmt
    generations = pd.read_parquet(results / "generations/isaac/tau1.0-m1-seed0.parquet")
    assert len(generations) == 4 and generations["generation"].str.strip().ne("").any()


def test_head_vs_rest_runs_end_to_end_at_ci_size(tmp_path):
    """Many responses per prompt: the demo's prompt groups as pools, its own judge."""
    layers = tiny_with(
        tmp_path,
        "corpus: {name: tiny-groups}\n"
        "assess: {assessor: exact, pool: prompt}\njudge: {second: null}",
    )
    snakemake(tmp_path, "--cores", "2", "results/tiny-groups/head_safety.json", configfiles=layers)
    results = tmp_path / "results" / "tiny-groups"
    summary = json.loads((results / "head_safety.json").read_text())
    per_prompt = pd.read_parquet(results / "head_safety.parquet")
    corpus = pd.read_parquet(results / "corpus.parquet")
    assert summary["n_pools"] == corpus.loc[corpus["split"] == "train", "prompt_group"].nunique()
    assert 0 < summary["n_compared"] <= summary["n_pools"] == len(per_prompt)
    assert summary["difference_lo"] <= summary["difference"] <= summary["difference_hi"]
