"""Input functions and stage settings of rules/corpus.smk."""


def corpus_input_files():
    """The files ingest reads, so editing the data reruns it (none for the demo corpus)."""
    corpus = config["corpus"]
    fmt, path = corpus["format"], corpus["path"]
    if fmt == "demo" or not path:
        return []
    if fmt == "diasafety":
        return [str(Path(path) / f"{split}.json") for split in ("train", "val", "test")]
    if fmt == "diasafety_generations" and Path(path).is_dir():
        return sorted(str(p) for p in Path(path).glob("*.json")) or [path]
    return [path]


def corpus_config():
    """The corpus section as ingest reads it: the path and field mapping only for files, the
    demo's settings only for the demo."""
    demo = config["corpus"]["format"] == "demo"
    return stage_config("corpus", ("path", "fields") if demo else ("demo",))


def ngram_tables():
    return [
        res("ngrams", f"n{n}.parquet") for n in range(1, config["ngrams"]["max_n"] + 1)
    ]
