"""Input functions of rules/corpus.smk."""


def corpus_input_files():
    """The files ingest reads (none for the demo corpus): its inputs, and their content
    its fingerprint, so editing the data reruns it whatever their modification times."""
    corpus = config["corpus"]
    fmt, path = corpus["format"], corpus["path"]
    if fmt == "demo" or not path:
        return []
    if fmt == "diasafety":
        return [str(Path(path) / f"{split}.json") for split in ("train", "val", "test")]
    if fmt == "diasafety_generations" and Path(path).is_dir():
        return sorted(str(p) for p in Path(path).glob("*.json")) or [path]
    return [path]


def ngram_tables():
    return [
        res("ngrams", f"n{n}.parquet") for n in range(1, config["ngrams"]["max_n"] + 1)
    ]
