"""Input functions and config slices of rules/sample.smk."""


def encoder_name():
    """The encoder's name in file names: a named encoder, or a model folder's (or embed.name)."""
    encoder = config["embed"]["encoder"]
    if encoder in NAMED_ENCODERS:
        return encoder
    return config["embed"]["name"] or Path(encoder).name


def dbscan_eps():
    """assess.eps, or the configured encoder's entry of assess.eps_defaults (none when the
    eps_quantile rule sets the radius from the data)."""
    assess = config["assess"]
    if assess["eps"] is not None or assess["eps_quantile"] is not None:
        return assess["eps"]
    defaults = assess["eps_defaults"]
    return defaults.get(encoder_name(), defaults.get("other", 0.75))


def encoder_folder():
    """The distilled folder the embed job reads (encoder model2vec), else no input."""
    return (
        res("encoders", "model2vec")
        if config["embed"]["encoder"] == "model2vec"
        else []
    )


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
    """The assessor's statistics beside its groups: the eps it used, pool and group sizes."""
    return res("groups", f"{config['assess']['assessor']}.json")


def uses_encoder():
    """Whether the groups depend on the embeddings (neighbour pools or DBSCAN)."""
    assess = config["assess"]
    return assess["pool"] == "neighbours" or assess["assessor"] == "dbscan"


def embed_slice():
    embed = config["embed"]
    return {key: embed[key] for key in ("encoder", "batch_size", "tfidf_components")}


def assess_slice():
    """The assess section as the assessor reads it: eps only for dbscan, the threshold only
    for fuzzy, so an edit the assessor ignores reruns nothing."""
    assess = config["assess"]
    return {
        "assessor": assess["assessor"],
        "pool": assess["pool"],
        "eps": dbscan_eps() if assess["assessor"] == "dbscan" else None,
        "eps_quantile": (
            assess["eps_quantile"]
            if assess["assessor"] == "dbscan" and assess["eps"] is None
            else None
        ),
        "fuzzy_threshold": (
            assess["fuzzy_threshold"] if assess["assessor"] == "fuzzy" else None
        ),
    }


def assess_inputs(wildcards):
    """Only the tables the configured assessor and pool mode read."""
    assess = config["assess"]
    inputs = {"corpus": res("corpus.parquet")}
    if assess["pool"] == "neighbours":
        inputs["neighbours"] = neighbours_file()
    if assess["assessor"] == "dbscan":
        inputs["embeddings"] = embeddings_file()
    if assess["assessor"] == "likelihood":
        inputs["likelihood"] = res("likelihood.parquet")
    return inputs


def sample_slice(method):
    """The settings one method's targets depend on; null for the others, so an edit that
    cannot change a method's targets does not rerun it (nor what trains on them)."""
    pool, group = method in POOL_METHODS, method in GROUP_METHODS
    assess = assess_slice()
    return {
        "top_k_groups": config["sample"]["top_k_groups"] if group else None,
        "head_shortcut": config["sample"]["head_shortcut"] if group else None,
        "group_size": config["sample"]["group_size"] if group else None,
        "assessor": assess["assessor"] if pool else None,
        "encoder": encoder_name() if pool and uses_encoder() else None,
        "eps": assess["eps"] if pool else None,
        "pool": assess["pool"] if pool else None,
        "k": (
            config["neighbours"]["k"]
            if pool and assess["pool"] == "neighbours"
            else None
        ),
    }


def sample_inputs(wildcards):
    """raw and sft read only the corpus; the pool methods also read the groups table."""
    inputs = {"corpus": res("corpus.parquet")}
    if wildcards.method in POOL_METHODS:
        inputs["groups"] = groups_file()
    return inputs


def tau_figure_stats():
    """Target statistics (sampled, not trained) behind the oracle-safe-rate-vs-tau figure."""
    sweep = config["sweep"]
    taus = sorted(set(config["sample"]["figure_taus"]) | set(sweep["taus"]))
    methods = [*REFERENCE_METHODS, *GROUP_METHODS]
    runs = run_ids(methods, taus, sweep["ms"][:1], sweep["seeds"][:1])
    return [res("targets", f"{run}.json") for run in runs]
