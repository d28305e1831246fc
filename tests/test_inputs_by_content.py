"""What a job reads from outside the pipeline (the corpus, a local encoder or generator
folder) reruns it when its content changes, even with its old modification time; and a local
model folder that holds a pickle or asks for its own code is refused before any job."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import TINY_CONFIG, planned_jobs, snakemake
from isaac.generator_tokenizer import train_tokenizer
from isaac.packaged import minilm_path

pytestmark = pytest.mark.workflow

CORPUS = "results/bycontent/corpus.parquet"
RUN = "raw/tau1.0-m1-seed0"


def rewrite_keeping_times(path: Path, data: bytes) -> None:
    """Replace the file's content and set its times back, as cp -p, rsync -a and tar x do."""
    before = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def corpus_lines(responses: int) -> bytes:
    """A 30-row JSONL corpus whose responses take `responses` values, a third of it test."""
    rows = [
        {
            "prompt": f"question {i}",
            "response": f"answer {i % responses}",
            "label": "safe",
            "split": "test" if i % 3 == 0 else "train",
        }
        for i in range(30)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def jsonl_corpus(workdir: Path) -> Path:
    path = workdir / "data" / "corpus.jsonl"
    path.parent.mkdir()
    path.write_bytes(corpus_lines(responses=3))
    return path


def layer(workdir: Path, text: str) -> tuple[Path, Path]:
    path = workdir / "layer.yaml"
    path.write_text(text)
    return TINY_CONFIG, path


def planned(workdir: Path, targets: str | list[str], configfiles) -> dict[str, int]:
    """The jobs a dry run for `targets` plans, per rule."""
    targets = [targets] if isinstance(targets, str) else targets
    proc = snakemake(workdir, "--dry-run", *targets, configfiles=configfiles)
    return planned_jobs(proc.stdout)


def test_a_corpus_edit_that_keeps_its_old_modification_time_reruns_ingest(tmp_path):
    data = jsonl_corpus(tmp_path)
    configs = layer(tmp_path, f"corpus: {{name: bycontent, format: jsonl, path: {data}}}\n")
    snakemake(tmp_path, "--cores", "1", CORPUS, configfiles=configs)
    assert planned(tmp_path, CORPUS, configs) == {}

    # the same bytes in a new file with the old times (cp -p of an identical copy): nothing
    copy = data.with_suffix(".copy")
    shutil.copy2(data, copy)
    os.replace(copy, data)
    (data.parent / "notes.txt").write_text("an unrelated file beside the data")
    assert planned(tmp_path, CORPUS, configs) == {}

    rewrite_keeping_times(data, corpus_lines(responses=5))
    assert planned(tmp_path, CORPUS, configs) == {"ingest": 1}


def tiny_encoder(folder: Path, seed: int) -> Path:
    """A 2-layer random BERT with MiniLM's tokenizer, saved as safetensors: a local
    Hugging Face encoder folder as embed.encoder names one."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()), trust_remote_code=False)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def tiny_generator(folder: Path, seed: int) -> Path:
    """A 1-layer random GPT-2 with a byte-level tokenizer, saved as safetensors: a local
    checkpoint as generator.model names one."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = train_tokenizer(corpus_lines(3).decode().split("\n"), 300)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_layer=1,
        n_head=2,
        n_embd=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def test_new_weights_in_a_local_model_folder_rerun_the_jobs_that_read_it_whatever_their_time(
    tmp_path,
):
    data = jsonl_corpus(tmp_path)
    encoder = tiny_encoder(tmp_path / "encoder", seed=0)
    generator = tiny_generator(tmp_path / "generator", seed=0)
    configs = layer(
        tmp_path,
        f"corpus: {{name: bycontent, format: jsonl, path: {data}}}\n"
        f"embed: {{encoder: {encoder}, batch_size: 8, shards: 2}}\n"
        f"generator: {{model: {generator}}}\n",
    )
    targets = ["results/bycontent/embeddings/encoder.npz", f"results/bycontent/models/{RUN}"]
    snakemake(tmp_path, "--cores", "1", *targets, configfiles=configs)

    weights = encoder / "model.safetensors"
    trained_on = weights.read_bytes()
    rewrite_keeping_times(
        weights,
        tiny_encoder(tmp_path / "other-encoder", seed=1).joinpath(weights.name).read_bytes(),
    )
    # the shards read the folder; the gathering embed job reruns on their new files
    assert planned(tmp_path, targets, configs) == {"embed": 1, "embed_shard": 2}
    rewrite_keeping_times(weights, trained_on)
    (encoder / ".git").mkdir()
    (encoder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # no loader reads it
    assert planned(tmp_path, targets, configs) == {}

    weights = generator / "model.safetensors"
    rewrite_keeping_times(
        weights,
        tiny_generator(tmp_path / "other-generator", seed=1).joinpath(weights.name).read_bytes(),
    )
    assert planned(tmp_path, targets, configs) == {"train": 1}


def pickled(folder: Path) -> str:
    import torch

    torch.save({"weight": torch.zeros(2)}, folder / "pytorch_model.bin")
    return "pytorch_model.bin"


def remote_code(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    return "config.json"


def custom_module(folder: Path) -> str:
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["type"] = "custom_code.Transformer"
    (folder / "modules.json").write_text(json.dumps(modules))
    return "modules.json"


@pytest.mark.parametrize(
    "key, unsafe",
    [
        ("embed.encoder", pickled),
        ("embed.encoder", remote_code),
        ("embed.encoder", custom_module),
        ("generator.model", remote_code),
    ],
    ids=["encoder-pickle", "encoder-auto_map", "encoder-module", "generator-auto_map"],
)
def test_a_model_folder_with_a_pickle_or_its_own_code_is_refused_before_any_job(
    tmp_path, key, unsafe
):
    folder = tmp_path / "model"
    shutil.copytree(minilm_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    name = unsafe(folder)
    section, option = key.split(".")
    configs = layer(tmp_path, f"{section}: {{{option}: {folder}}}\n")
    proc = snakemake(tmp_path, "--dry-run", configfiles=configs, check=False)
    assert proc.returncode != 0
    assert f"{key}: {folder / name}: " in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
