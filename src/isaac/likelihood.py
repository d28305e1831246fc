"""How typical is each train response? Its leave-one-out likelihood under an n-gram LM.

Smoothing: interpolated Witten-Bell, recursively down to a uniform distribution. For a history
h of k-1 tokens (padded on the left with <s>), with c(h, w) the count of the k-gram, c(h) =
sum_w c(h, w) and T(h) the number of distinct w seen after h:

    P_k(w | h) = (c(h, w) + T(h) * P_{k-1}(w | h')) / (c(h) + T(h))    if c(h) > 0
    P_k(w | h) = P_{k-1}(w | h')                                        if c(h) = 0
    P_0(w)     = 1 / (|V| + 2)

h' drops the oldest token of h; the outcome space is the vocabulary V (words of the training
responses) plus </s> and <unk>. Every level sums to 1 over that space, so every context, even
one never seen, has a proper distribution. Words outside V are scored as <unk>.

Leave-one-out: each train response is scored by the model trained on all *other* train
responses. That is exactly the model above with the response's own counts subtracted: c(h, w),
c(h), T(h) and |V| all lose what only this response contributed. The subtraction is done for
every response at once with integer ids and bincount, so no response triggers a recount.
`WittenBellLM` is the plain, dictionary-based model (used for held-out text and by the tests to
check the vectorised leave-one-out scores).
"""

from __future__ import annotations

import argparse
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from isaac.cli import run
from isaac.io import InputError, read_table, write_parquet
from isaac.ngrams import train_response_tokens
from isaac.settings import add_config_argument, parse
from isaac.text import normalise
from isaac.tokenize import flatten

log = logging.getLogger("isaac.likelihood")

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


@dataclass(frozen=True)
class LikelihoodConfig:
    order: int


class WittenBellLM:
    """Interpolated Witten-Bell n-gram LM over the tokens of `sentences` (see module doc)."""

    def __init__(self, sentences: Sequence[Sequence[str]], order: int):
        if order < 1:
            raise InputError(f"likelihood: order must be >= 1, got {order}")
        self.order = order
        self.vocab = {w for s in sentences for w in s}
        grams: list[Counter] = [Counter() for _ in range(order)]
        for sentence in sentences:
            padded = [BOS] * (order - 1) + list(sentence) + [EOS]
            for t in range(order - 1, len(padded)):
                for k in range(1, order + 1):
                    grams[k - 1][(tuple(padded[t - k + 1 : t]), padded[t])] += 1
        self.grams = grams
        self.context_counts: list[Counter] = [Counter() for _ in range(order)]
        self.context_types: list[Counter] = [Counter() for _ in range(order)]
        for k in range(order):
            for (h, _), c in grams[k].items():
                self.context_counts[k][h] += c
                self.context_types[k][h] += 1

    def outcomes(self) -> list[str]:
        """Everything the model assigns probability to: V, </s> and <unk>."""
        return sorted(self.vocab) + [EOS, UNK]

    def _map(self, token: str) -> str:
        return token if token in self.vocab or token in (BOS, EOS) else UNK

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        """P(word | context); uses the last order-1 tokens of context, unknown tokens as <unk>."""
        word = self._map(word)
        if word == BOS:
            return 0.0
        context = tuple(self._map(t) for t in context)
        p = 1.0 / (len(self.vocab) + 2)
        for k in range(1, self.order + 1):
            if k - 1 > len(context):
                break
            h = context[len(context) - (k - 1) :]
            ch = self.context_counts[k - 1].get(h, 0)
            if ch == 0:
                continue
            types = self.context_types[k - 1][h]
            p = (self.grams[k - 1].get((h, word), 0) + types * p) / (ch + types)
        return p

    def logprobs(self, tokens: Sequence[str]) -> list[float]:
        """Natural-log probability of each token and of the closing </s>."""
        padded = [BOS] * (self.order - 1) + list(tokens) + [EOS]
        return [
            math.log(self.prob(padded[t], padded[t - self.order + 1 : t]))
            for t in range(self.order - 1, len(padded))
        ]

    def mean_loglik(self, tokens: Sequence[str]) -> float:
        lp = self.logprobs(tokens)
        return sum(lp) / len(lp)


def _pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense ids for the pairs (a[i], b[i]) of non-negative integers."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    key = a.astype(np.int64) * (int(b.max()) + 1) + b.astype(np.int64)
    return pd.factorize(key)[0].astype(np.int64)


def loo_loglik(sentences: Sequence[Sequence[str]], order: int) -> np.ndarray:
    """Mean natural-log probability per token (incl. </s>) of each sentence, leave-one-out."""
    if order < 1:
        raise InputError(f"likelihood: order must be >= 1, got {order}")
    n_sent = len(sentences)
    if n_sent == 0:
        return np.zeros(0)
    flat, lengths = flatten(sentences)
    codes, vocab = pd.factorize(flat) if len(flat) else (np.zeros(0, dtype=np.int64), [])
    n_vocab = len(vocab)
    bos_code, eos_code = n_vocab, n_vocab + 1

    # Padded token stream: (order-1) x <s>, the words, </s> for every sentence.
    padded_len = lengths + order
    offsets = np.concatenate([[0], np.cumsum(padded_len)[:-1]])
    pad = np.full(int(padded_len.sum()), bos_code, dtype=np.int64)
    word_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    word_pos = np.repeat(offsets + order - 1, lengths) + (
        np.arange(len(codes)) - np.repeat(word_start, lengths)
    )
    pad[word_pos] = codes
    pad[offsets + order - 1 + lengths] = eos_code
    pred = np.flatnonzero(pad != bos_code)  # positions whose token is predicted
    sent = np.repeat(np.arange(n_sent, dtype=np.int64), lengths + 1)
    word = pad[pred]

    # Leave-one-out vocabulary: words whose every occurrence is in the sentence itself drop out.
    is_word = word != eos_code
    total = np.bincount(word[is_word], minlength=n_vocab)
    sw = _pair(sent[is_word], word[is_word])
    own = np.bincount(sw)
    first = np.unique(sw, return_index=True)[1]
    gone = own[sw[first]] == total[word[is_word][first]]
    lost_words = np.bincount(sent[is_word][first], weights=gone, minlength=n_sent)
    prob = 1.0 / (n_vocab - lost_words[sent] + 2)

    ctx = np.zeros(len(pred), dtype=np.int64)  # the empty history of order 1
    for k in range(1, order + 1):
        if k > 1:
            ctx = _pair(pad[pred - (k - 1)], ctx)
        gram = _pair(ctx, word)
        c_gram = np.bincount(gram)
        c_ctx = np.bincount(ctx)
        ctx_of_gram = np.zeros(len(c_gram), dtype=np.int64)
        ctx_of_gram[gram] = ctx
        types = np.bincount(ctx_of_gram, minlength=len(c_ctx))
        # This sentence's own share of each count.
        sg = _pair(sent, gram)
        own_gram = np.bincount(sg)[sg]
        sc = _pair(sent, ctx)
        own_ctx = np.bincount(sc)[sc]
        first = np.unique(sg, return_index=True)[1]
        vanished = c_gram[gram[first]] == own_gram[first]
        lost_types = np.bincount(sc[first], weights=vanished, minlength=int(sc.max()) + 1)[sc]
        c_hw = c_gram[gram] - own_gram
        c_h = c_ctx[ctx] - own_ctx
        t_h = types[ctx] - lost_types
        seen = c_h > 0
        prob = np.where(seen, (c_hw + t_h * prob) / np.where(seen, c_h + t_h, 1), prob)
    return np.bincount(sent, weights=np.log(prob), minlength=n_sent) / (lengths + 1)


def likelihood_table(corpus: pd.DataFrame, tokens: pd.DataFrame, order: int) -> pd.DataFrame:
    """likelihood.parquet: id, n_tokens, loglik (leave-one-out), response_freq (train rows)."""
    train = corpus.loc[corpus["split"] == "train"]
    sentences = train_response_tokens(tokens, corpus)
    norm = train["response"].map(normalise)
    return pd.DataFrame(
        {
            "id": train["id"].to_numpy(dtype=object),
            "n_tokens": np.fromiter(
                (len(s) for s in sentences), dtype=np.int64, count=len(sentences)
            ),
            "loglik": loo_loglik(sentences, order),
            "response_freq": norm.map(norm.value_counts()).to_numpy(dtype=np.int64),
        }
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m isaac.likelihood",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--corpus", required=True, help="corpus.parquet")
    parser.add_argument("--tokens", required=True, help="tokens.parquet")
    add_config_argument(parser, LikelihoodConfig)
    parser.add_argument("--out", required=True, help="likelihood.parquet to write")
    args = parser.parse_args(argv)
    config = parse(LikelihoodConfig, args.config)
    corpus = read_table(args.corpus, ["id", "split", "response"])
    tokens = read_table(args.tokens, ["id", "response_tokens"])
    table = likelihood_table(corpus, tokens, config.order)
    if table.empty:
        raise InputError(f"{args.corpus}: no train rows to score")
    write_parquet(table, args.out)
    log.info("scored %d train responses (order %d) -> %s", len(table), config.order, args.out)


if __name__ == "__main__":
    run(main)
