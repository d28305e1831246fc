"""Points and input functions of rules/experiments.smk."""

from isaac.experiments import (
    encoder_run,
    encoder_settings,
    encoders_study,
    experiment_points,
    point_config,
)

EXPERIMENT_POINTS = experiment_points(config)


def point_res(point, *parts):
    """A path under a point's results folder, results/{point}/."""
    return str(Path("results", point.name, *parts))


def points_of(experiment, axis):
    """The experiment's points; an empty axis is an error only when its table is asked for."""
    points = EXPERIMENT_POINTS[experiment]
    if not points:
        raise ValueError(
            f"experiments.{experiment}.{axis} is empty: layer the experiment's config "
            "(docs/results.md) or set the axis"
        )
    return points


def encoders_inputs(wildcards):
    """Per setting, the groups' statistics and the targets' statistics of every method."""
    study = config["experiments"]["encoders"]
    points = points_of("encoders", "encoders")
    settings = encoder_settings(encoders_study(config))
    return {
        "groups": [
            point_res(p, "groups", f"{s.assessor}.json")
            for p, s in zip(points, settings)
        ],
        "targets": [
            point_res(p, "targets", f"{encoder_run(method, config)}.json")
            for p in points
            for method in study["methods"]
        ],
    }


def trained_encoders_inputs(wildcards):
    """This corpus's summary and groups' statistics (its own encoder), then each point's; the
    scores of this corpus's raw runs, and of each point's runs, which the table pairs with
    them (a point trains no raw of its own)."""
    points = points_of("trained_encoders", "encoders")
    folders = [res()] + [point_res(p) for p in points]
    assessor = config["assess"]["assessor"]
    sweep = config["sweep"]
    raw_runs = run_ids(["raw"], sweep["taus"], sweep["ms"], sweep["seeds"])
    point_runs = [
        (p, run) for p in points for run in sweep_runs_of(point_config(config, p))
    ]
    return {
        "summaries": [str(Path(f, "summary.csv")) for f in folders],
        "groups": [str(Path(f, "groups", f"{assessor}.json")) for f in folders],
        "raw_scores": [res("scores", f"{run}.json") for run in raw_runs],
        "raw_per_prompt": [res("scores", f"{run}.parquet") for run in raw_runs],
        "scores": [point_res(p, "scores", f"{run}.json") for p, run in point_runs],
        "per_prompt": [
            point_res(p, "scores", f"{run}.parquet") for p, run in point_runs
        ],
    }
