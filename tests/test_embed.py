"""Embedding stage: encoders, unit rows, the cache file format, CLI errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import schema_defaults, settings
from isaac import embed
from isaac.cli import run
from isaac.embed import EmbedConfig
from isaac.io import InputError
from isaac.packaged import minilm_path
from isaac.settings import to_json


def embed_config(**overrides) -> str:
    """--config: the embed section (schema defaults and `overrides`) as the workflow passes it."""
    return to_json(settings(EmbedConfig, "embed", **overrides))


def corpus(tmp_path, n=40, empty=False):
    rows = []
    for i in range(n):
        topic = ["weather", "football", "cooking", "music"][i % 4]
        rows.append(
            {
                "id": f"r{i}",
                "split": "train" if i < n - 5 else "test",
                "prompt": f"tell me about {topic} number {i % 7}",
                "response": "" if empty and i == 0 else f"I like {topic} a lot, really {i % 3}",
                "label": "safe",
                "category": None,
                "prompt_group": None,
            }
        )
    path = tmp_path / "corpus.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def test_tfidf_vectors_are_unit_rows_and_deterministic():
    prompts = [f"question about topic {i % 5} and more {i}" for i in range(30)]
    responses = [f"answer {i % 3} about topic {i % 5}" for i in range(30)]
    p1, r1 = embed.embed_tfidf(prompts, responses, n_components=8)
    p2, r2 = embed.embed_tfidf(prompts, responses, n_components=8)
    assert p1.dtype == np.float32 and p1.shape == (30, 8) and r1.shape == (30, 8)
    np.testing.assert_allclose(np.linalg.norm(np.vstack([p1, r1]), axis=1), 1.0, atol=1e-5)
    assert np.array_equal(p1, p2) and np.array_equal(r1, r2)
    # a prompt and a response with the same text get the same vector (one shared space)
    p3, r3 = embed.embed_tfidf(prompts, [prompts[3]] + responses[1:], n_components=8)
    np.testing.assert_allclose(p3[3], r3[0], atol=1e-6)


def test_tfidf_empty_text_is_the_zero_vector():
    prompts, responses = ["hello there", "general kenobi"], ["", "you are a bold one"]
    _, r = embed.embed_tfidf(prompts, responses, n_components=3)
    assert np.all(r[0] == 0)
    assert np.isclose(np.linalg.norm(r[1]), 1.0, atol=1e-5)


def test_tfidf_with_no_vocabulary_is_an_input_error():
    with pytest.raises(InputError, match="no usable text"):
        embed.embed_tfidf(["", " "], ["", ""], schema_defaults("embed")["tfidf_components"])


def test_minilm_is_found_in_site_packages_and_loads_offline():
    path = minilm_path()
    assert (path / "model.safetensors").is_file()
    p, r = embed.embed_corpus(
        ["How do I bake bread?", "How do I bake a cake?", "Who won the football match?"],
        ["Use flour and yeast.", "Use flour and sugar.", "The home team won."],
        settings(EmbedConfig, "embed", encoder="minilm", batch_size=2),
        progress=False,
    )
    assert p.shape == (3, 384) and p.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([p, r]), axis=1), 1.0, atol=1e-5)
    assert p[0] @ p[1] > p[0] @ p[2]  # baking questions are closer to each other


def test_batch_plan_puts_longest_texts_first_and_shards_take_every_nth_batch():
    texts = ["a", "ccc", "bb", "dddd", "", "ee"]
    batches = embed.encoding_batches(texts, batch_size=2)
    assert [b.tolist() for b in batches] == [[3, 1], [2, 5], [0, 4]]  # ties in text order
    assert [b.tolist() for b in embed.shard_batches(texts, 2, 1, 2)] == [[2, 5]]
    assert [b.tolist() for b in embed.shard_batches(texts, 2, 0, 2)] == [[3, 1], [0, 4]]
    with pytest.raises(InputError, match="--shard 2 is not one of the 2 shards"):
        embed.shard_batches(texts, 2, 2, 2)


def embed_cli(path, out, *extra, config=None):
    embed.main(
        [
            "--corpus",
            str(path),
            "--config",
            config or embed_config(batch_size=4),
            "--threads",
            "2",
            *extra,
            "--out",
            str(out),
        ]
    )


def test_three_gathered_shards_equal_the_unsharded_file_byte_for_byte(tmp_path):
    path = corpus(tmp_path, empty=True)
    embed_cli(path, tmp_path / "whole.npz")
    shards = [tmp_path / "shards" / f"{i}.npz" for i in range(3)]
    for i, shard in enumerate(shards):
        embed_cli(path, shard, "--shard", str(i), "--shards", "3")
    index = np.concatenate([embed.load_shard(shard)[0] for shard in shards])
    assert sorted(index.tolist()) == list(range(len(index)))  # every distinct text once
    embed_cli(path, tmp_path / "gathered.npz", "--gather", *map(str, shards))
    assert (tmp_path / "gathered.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()
    # shards in the wrong order (or stale) are refused, naming the file, and nothing is written
    with pytest.raises(InputError, match=f"{shards[1]}: not shard 0 of 3"):
        embed_cli(
            path, tmp_path / "bad.npz", "--gather", *map(str, [shards[1], shards[0], shards[2]])
        )
    assert not (tmp_path / "bad.npz").exists()


def test_more_shards_than_batches_gather_the_unsharded_file(tmp_path):
    path = corpus(tmp_path)
    config = embed_config(batch_size=64)
    embed_cli(path, tmp_path / "whole.npz", config=config)
    shards = [tmp_path / "shards" / f"{i}.npz" for i in range(4)]
    for i, shard in enumerate(shards):
        embed_cli(path, shard, "--shard", str(i), "--shards", "4", config=config)
    empty = [shard for shard in shards if not len(embed.load_shard(shard)[0])]
    assert len(empty) >= 2  # at most 70 distinct texts: 2 batches of 64
    embed_cli(path, tmp_path / "gathered.npz", "--gather", *map(str, shards), config=config)
    assert (tmp_path / "gathered.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()


def test_tfidf_cannot_be_sharded(tmp_path):
    path = corpus(tmp_path)
    with pytest.raises(InputError, match="tfidf is fitted on the whole corpus"):
        embed_cli(
            path,
            tmp_path / "s.npz",
            "--shard",
            "0",
            "--shards",
            "2",
            config=embed_config(encoder="tfidf"),
        )
    assert not (tmp_path / "s.npz").exists()


def test_missing_model_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="encoder folder not found"):
        embed.load_encoder(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither a sentence-transformers"):
        embed.load_encoder(str(tmp_path / "empty"))


def test_saved_file_round_trips_without_pickle_and_is_byte_stable(tmp_path):
    ids = np.array(["a", "b", "c"])
    p = np.eye(3, dtype=np.float32)
    r = np.eye(3, dtype=np.float32)[::-1]
    embed.save_embeddings(tmp_path / "one.npz", ids, p, r)
    embed.save_embeddings(tmp_path / "two.npz", ids, p, r)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    got_ids, got_p, got_r = embed.load_embeddings(tmp_path / "one.npz")
    assert got_ids.tolist() == ["a", "b", "c"]
    assert np.array_equal(got_p, p) and np.array_equal(got_r, r)
    with np.load(tmp_path / "one.npz", allow_pickle=False) as data:
        assert set(data.files) == {"ids", "prompts", "responses"}


def test_load_rejects_a_file_that_is_not_embeddings(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(InputError, match="bad.npz"):
        embed.load_embeddings(bad)
    with pytest.raises(InputError, match="file not found"):
        embed.load_embeddings(tmp_path / "missing.npz")


def test_cli_embeds_the_train_split_only(tmp_path):
    path = corpus(tmp_path, empty=True)
    out = tmp_path / "emb" / "tfidf.npz"
    config = embed_config(encoder="tfidf", tfidf_components=6)
    embed.main(["--corpus", str(path), "--config", config, "--out", str(out)])
    ids, p, r = embed.load_embeddings(out)
    assert ids.tolist() == [f"r{i}" for i in range(35)]
    assert p.shape == r.shape == (35, 6)
    # the same vectors as the library call with the same settings
    train = pd.read_parquet(path).iloc[:35]
    p2, r2 = embed.embed_corpus(
        train["prompt"].tolist(),
        train["response"].tolist(),
        settings(EmbedConfig, "embed", encoder="tfidf", tfidf_components=6),
    )
    assert np.array_equal(p, p2) and np.array_equal(r, r2)


def test_cli_without_train_rows_fails_and_writes_nothing(tmp_path):
    path = tmp_path / "corpus.parquet"
    pd.DataFrame({"id": ["a"], "split": ["test"], "prompt": ["p"], "response": ["r"]}).to_parquet(
        path
    )
    out = tmp_path / "e.npz"
    with pytest.raises(InputError, match="no rows with split 'train'"):
        embed.main(
            ["--corpus", str(path), "--config", embed_config(encoder="tfidf"), "--out", str(out)]
        )
    assert not out.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"drop": "tfidf_components"}, "missing key(s) tfidf_components"),
        ({"add": {"name": None}}, "unknown key(s) name"),
        ({"add": {"tfidf-components": 6}}, "unknown key(s) tfidf-components"),
    ],
)
def test_cli_config_with_a_missing_or_unknown_key_exits_2_naming_it(
    tmp_path, capsys, change, message
):
    path = corpus(tmp_path)
    config = json.loads(embed_config(encoder="tfidf"))
    config.pop(change.get("drop"), None)
    config.update(change.get("add", {}))
    out = tmp_path / "e.npz"
    with pytest.raises(SystemExit) as exit_info:
        run(embed.main, ["--corpus", str(path), "--config", json.dumps(config), "--out", str(out)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def model2vec_folder(tmp_path_factory):
    """The static encoder as rule encoder_model2vec distils it (about half a minute)."""
    from isaac import encoder_model2vec

    out = tmp_path_factory.mktemp("encoders") / "model2vec"
    dims = schema_defaults("embed")["model2vec_dims"]
    config = to_json(
        settings(
            EmbedConfig,
            "embed",
            encoder=None,
            batch_size=None,
            tfidf_components=None,
            model2vec_dims=dims,
        )
    )
    encoder_model2vec.main(["--config", config, "--out", str(out)])
    return out


def test_model2vec_distils_offline_from_minilm_and_embeds_like_an_encoder(
    tmp_path, model2vec_folder
):
    assert (model2vec_folder / "model.safetensors").is_file()
    assert json.loads((model2vec_folder / "config.json").read_text())["hidden_dim"] == 256
    path = corpus(tmp_path, empty=True)
    out = tmp_path / "emb" / "model2vec.npz"
    config = embed_config(encoder="model2vec")
    embed.main(
        [
            "--corpus",
            str(path),
            "--model",
            str(model2vec_folder),
            "--config",
            config,
            "--out",
            str(out),
        ]
    )
    ids, p, r = embed.load_embeddings(out)
    assert p.shape == r.shape == (35, 256) and p.dtype == np.float32
    norms = np.linalg.norm(np.vstack([p, r]), axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=1e-5)
    # same topic closer than another topic: prompts 0 and 4 (weather) against 1 (football)
    assert p[0] @ p[4] > p[0] @ p[1]
    again = tmp_path / "again.npz"
    embed.main(
        [
            "--corpus",
            str(path),
            "--model",
            str(model2vec_folder),
            "--config",
            config,
            "--out",
            str(again),
        ]
    )
    assert again.read_bytes() == out.read_bytes()


def test_model2vec_read_without_torch_equals_the_sentence_transformers_path(model2vec_folder):
    """The numpy reading of the folder gives the vectors sentence-transformers gives, bit for bit
    (the embeddings files made before it stay valid)."""
    pytest.importorskip("sentence_transformers")
    texts = [
        "How do I bake bread?",
        "",
        "!!!",
        "Ünïcödé façade — naïve café 🙂",
        "word " * 700,  # beyond the tokenizer's 512 tokens: truncated alike
        "I hate you. You are the worst person I have ever met.",
    ]
    static = embed._static_encoder(model2vec_folder)(texts, len(texts), False)
    neural = embed.load_encoder(str(model2vec_folder))(texts, len(texts), False)
    assert static.dtype == np.float32 and np.all(static[1] == 0)
    assert np.array_equal(embed.l2_normalise(static), embed.l2_normalise(neural))


def test_model2vec_embeds_without_importing_torch(tmp_path, model2vec_folder):
    path = corpus(tmp_path)
    out = tmp_path / "model2vec.npz"
    argv = ["--corpus", str(path), "--model", str(model2vec_folder)]
    argv += ["--config", embed_config(encoder="model2vec"), "--out", str(out)]
    script = (
        "import sys\n"
        "from isaac import embed\n"
        f"embed.main({argv!r})\n"
        "print(sorted({'torch', 'sentence_transformers', 'transformers'} & set(sys.modules)))\n"
    )
    src = str(Path(embed.__file__).parents[1])  # this checkout's package, not another install
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert embed.load_embeddings(out)[1].shape == (35, 256)


def test_model2vec_folder_without_token_vectors_is_an_input_error(tmp_path):
    (tmp_path / "model2vec").mkdir()
    config = settings(EmbedConfig, "embed", encoder="model2vec")
    with pytest.raises(InputError, match="not a model2vec folder"):
        embed.embed_corpus(["a"], ["b"], config, model=str(tmp_path / "model2vec"))


def test_model2vec_without_its_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="encoder model2vec needs --model"):
        embed.embed_corpus(["a"], ["b"], settings(EmbedConfig, "embed", encoder="model2vec"))


def test_cli_refuses_an_encoder_folder_holding_a_pickle_in_one_line(tmp_path, capsys):
    """Loaded as before, the pickled weights went through torch.load without a word."""
    import torch

    folder = tmp_path / "encoder"
    shutil.copytree(minilm_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    out = tmp_path / "e.npz"
    config = embed_config(encoder=str(folder))
    with pytest.raises(SystemExit) as exit_info:
        run(embed.main, ["--corpus", str(corpus(tmp_path)), "--config", config, "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {folder / 'pytorch_model.bin'}: a pickle file")
        and "\n" not in err.strip()
    )
    assert not out.exists()
