"""Input functions of rules/sample.smk."""


def encoder_folder():
    """The distilled folder the embed job reads (encoder model2vec), else no input."""
    return (
        res("encoders", "model2vec")
        if config["embed"]["encoder"] == "model2vec"
        else []
    )


def encoder_files(rule):
    """The local encoder folder (embed.encoder a path) that a job of `rule` reads: every
    embed_shard job, and embed unsharded (sharded, it only gathers); none for a named encoder.
    """
    folder = local_model_folder("embed.encoder")
    reads = rule == "embed_shard" or embed_shards() == 1
    return [folder] if folder and reads else []


def embeddings_file():
    return res("embeddings", f"{encoder_name()}.npz")


def embed_shards():
    """embed.shards, or 1 for tfidf (fitted on the whole corpus at once)."""
    return 1 if config["embed"]["encoder"] == "tfidf" else config["embed"]["shards"]


def embed_shard_file(shard):
    """One shard of the embedding (temporary: the gathered file is what stays)."""
    name = f"{encoder_name()}-{shard}-of-{embed_shards()}.npz"
    return res("embeddings", "shards", name)


def embed_inputs(wildcards):
    """The corpus, and the model folder (unsharded) or every shard file in shard order."""
    inputs = {"corpus": res("corpus.parquet")}
    if embed_shards() > 1:
        inputs["shards"] = [embed_shard_file(i) for i in range(embed_shards())]
    else:
        inputs["model"] = encoder_folder()
    return inputs


def neighbours_name():
    """{encoder}-k{k}, with -hnsw appended for the approximate index."""
    neighbours = config["neighbours"]
    suffix = "" if neighbours["index"] == "exact" else f"-{neighbours['index']}"
    return f"{encoder_name()}-k{neighbours['k']}{suffix}"


def neighbours_file():
    return res("neighbours", f"{neighbours_name()}.parquet")


def groups_file():
    return res("groups", f"{config['assess']['assessor']}.parquet")


def groups_stats_file():
    """The assessor's statistics beside its groups: what made them (assessor, pool, encoder, k,
    the eps it resolved) and pool and group sizes."""
    return res("groups", f"{config['assess']['assessor']}.json")


def global_groups_file():
    """The groups of the one pool of every train row (method global)."""
    return res("groups", f"{config['assess']['assessor']}-global.parquet")


def global_groups_stats_file():
    return res("groups", f"{config['assess']['assessor']}-global.json")


def uses_encoder():
    """Whether the groups depend on the embeddings (neighbour pools or DBSCAN)."""
    assess = config["assess"]
    return assess["pool"] == "neighbours" or assess["assessor"] == "dbscan"


def assess_inputs(wildcards):
    """Only the tables the configured assessor and pool mode read; the embeddings whenever the
    groups depend on the encoder (DBSCAN reads the vectors, every assessor records the name).
    """
    assess = config["assess"]
    inputs = {"corpus": res("corpus.parquet")}
    if assess["pool"] == "neighbours":
        inputs["neighbours"] = neighbours_file()
    if uses_encoder():
        inputs["embeddings"] = embeddings_file()
    if assess["assessor"] == "likelihood":
        inputs["likelihood"] = res("likelihood.parquet")
    return inputs


def assess_global_inputs(wildcards):
    """The corpus, the statistics of the pools' groups (their eps), and what the assessor
    reads: the embeddings for DBSCAN, the likelihoods for likelihood. No neighbours."""
    assessor = config["assess"]["assessor"]
    inputs = {"corpus": res("corpus.parquet"), "groups_stats": groups_stats_file()}
    if assessor == "dbscan":
        inputs["embeddings"] = embeddings_file()
    if assessor == "likelihood":
        inputs["likelihood"] = res("likelihood.parquet")
    return inputs


def sample_inputs(wildcards):
    """raw and sft read only the corpus; the pool methods also read the groups table and the
    statistics that say what made it (recorded with the targets); global those of the one
    pool of every train row."""
    inputs = {"corpus": res("corpus.parquet")}
    if wildcards.method in GLOBAL_POOL_METHODS:
        inputs["groups"] = global_groups_file()
        inputs["groups_stats"] = global_groups_stats_file()
    elif wildcards.method in POOL_METHODS:
        inputs["groups"] = groups_file()
        inputs["groups_stats"] = groups_stats_file()
    return inputs


def tau_figure_stats():
    """Target statistics (sampled, not trained) behind the oracle-safe-rate-vs-tau figure."""
    sweep = config["sweep"]
    taus = sorted(set(config["sample"]["figure_taus"]) | set(sweep["taus"]))
    methods = [*REFERENCE_METHODS, *GROUP_METHODS]
    runs = run_ids(methods, taus, sweep["ms"][:1], sweep["seeds"][:1])
    return [res("targets", f"{run}.json") for run in runs]


def pair_runs():
    """The preference-pair runs of the sweep: isaac_dpo at each of its (tau, m, seed),
    oracle_dpo (tau-free) at each (m, seed)."""
    sweep = config["sweep"]
    return run_ids(PAIR_METHODS, sweep["taus"], sweep["ms"], sweep["seeds"])
