"""Benchmark of the corpus stages (not a test): n-gram tables and tokenisation throughput.

n-gram tables: isaac.ngrams.ngram_columns (what the stage writes: Arrow columns from integer
keys counted by bincount) against `nltk.util.ngrams` + `collections.Counter` on the same train
response token lists, n = 1 .. ngrams.max_n, producing the same table (checked, outside the
timed part). Tokenisation: isaac.tokenize.tokenize_distinct
(Treebank) on the corpus's distinct prompt and response texts in 1 and in 2 worker processes
(outputs checked equal; the stage itself stays in one process below MIN_TEXTS_PER_PROCESS texts
per process), beside two pure-Python busy loops in 2 processes against one after the other: how
much of a second core the machine gives. Runs alternate and the medians are kept.

    .venv/bin/python bench/corpus_stages.py --corpus results/diasafety/corpus.parquet

(`snakemake --cores 2 results/diasafety/corpus.parquet --configfile config/diasafety.yaml`
writes the corpus.) Writes keys ngrams_vs_counter, tokenize_1_process and tokenize_2_processes
to docs/benchmarks.json, and the table docs/benchmarks/corpus_stages.csv (bench/tables.py).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from nltk.util import ngrams as nltk_ngrams

from isaac.io import read_table
from isaac.ngrams import ngram_columns, train_response_tokens
from isaac.tokenize import TokenizeConfig, tokenize_corpus, tokenize_distinct

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402
from tables import write_tables  # noqa: E402

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def schema_defaults(section: str) -> dict:
    schema = yaml.safe_load(SCHEMA.read_text())["properties"][section]["properties"]
    return {key: prop["default"] for key, prop in schema.items()}


def counter_table(token_lists, n: int) -> pd.DataFrame:
    """The n-gram table the straightforward way: nltk n-grams counted by Counters, sorted by
    Python."""
    count, doc_freq = Counter(), Counter()
    for tokens in token_lists:
        grams = list(nltk_ngrams(tokens, n))
        count.update(grams)
        doc_freq.update(set(grams))
    rows = sorted(
        ((" ".join(gram), c, doc_freq[gram]) for gram, c in count.items()),
        key=lambda row: (-row[1], row[0]),
    )
    table = pd.DataFrame(rows, columns=["ngram", "count", "doc_freq"])
    return table.astype({"ngram": object, "count": np.int64, "doc_freq": np.int64})


def busy(_=None) -> int:
    total = 0
    for i in range(10_000_000):
        total += i
    return total


def two_process_capacity() -> float:
    """Work per second of two busy processes at once over one: 2.0 on two idle cores."""
    serial, _ = timed(busy)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        parallel, _ = timed(lambda: list(pool.map(busy, [0, 1])))
    return 2 * serial / parallel


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    command = f"python bench/corpus_stages.py --corpus {args.corpus} --repeats {args.repeats}"
    load = os.getloadavg()[0]

    corpus = read_table(args.corpus, ["id", "split", "prompt", "response"])
    config = TokenizeConfig(**schema_defaults("tokenize"))
    reference = tokenize_corpus(corpus, config)
    texts = list(
        pd.unique(pd.concat([corpus["prompt"], corpus["response"]]).fillna("").astype(str))
    )
    one = tokenize_distinct(texts, config)
    n_tokens = sum(map(len, one))
    times: dict[int, list[float]] = {1: [], 2: []}
    capacity = []
    for _ in range(args.repeats):
        for processes in (1, 2):
            seconds, tokens = timed(
                tokenize_distinct, texts, config, processes, min_texts_per_process=1
            )
            times[processes].append(seconds)
            assert tokens == one, "worker processes changed the tokens"
        capacity.append(two_process_capacity())
    rate = {p: n_tokens / statistics.median(t) for p, t in times.items()}
    print(
        f"tokenise {len(texts)} distinct texts ({n_tokens} tokens): 1 process "
        f"{rate[1]:,.0f} tokens/s, 2 processes {rate[2]:,.0f} tokens/s "
        f"({rate[2] / rate[1]:.2f}x; two busy processes {statistics.median(capacity):.2f}x); "
        f"load {load:.1f}"
    )

    token_lists = train_response_tokens(reference, corpus)
    max_n = schema_defaults("ngrams")["max_n"]
    ours, counter = [], []
    for _ in range(args.repeats):
        ours.append(0.0)
        counter.append(0.0)
        for n in range(1, max_n + 1):
            seconds, columns = timed(ngram_columns, token_lists, n)
            ours[-1] += seconds
            seconds, baseline = timed(counter_table, token_lists, n)
            counter[-1] += seconds
            table = pd.DataFrame(
                {name: column.to_numpy(zero_copy_only=False) for name, column in columns.items()}
            )
            pd.testing.assert_frame_equal(table.astype({"ngram": object}), baseline)
    grams = sum(max(0, len(t) - n + 1) for t in token_lists for n in range(1, max_n + 1))
    ours_rate, counter_rate = grams / statistics.median(ours), grams / statistics.median(counter)
    print(
        f"n-gram tables n=1..{max_n} of {len(token_lists)} train responses ({grams} n-grams): "
        f"{statistics.median(ours):.2f} s against {statistics.median(counter):.2f} s "
        f"(nltk + Counter): {ours_rate / counter_rate:.1f}x"
    )

    if args.no_record:
        return
    extra = {"load_average": round(load, 2), "repeats": args.repeats}
    record(
        "ngrams_vs_counter",
        ours_rate,
        "n-grams/s",
        command,
        baseline=counter_rate,
        seconds=statistics.median(ours),
        baseline_seconds=statistics.median(counter),
        ngrams=grams,
        **extra,
    )
    record(
        "tokenize_1_process",
        rate[1],
        "tokens/s",
        command,
        tokens=n_tokens,
        distinct_texts=len(texts),
        **extra,
    )
    record(
        "tokenize_2_processes",
        rate[2],
        "tokens/s",
        command,
        baseline=rate[1],
        tokens=n_tokens,
        distinct_texts=len(texts),
        two_busy_processes_ratio=statistics.median(capacity),
        **extra,
    )
    write_tables()


if __name__ == "__main__":
    main()
