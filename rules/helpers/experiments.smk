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
    """This corpus's summary and groups' statistics (its own encoder), then each point's."""
    folders = [res()] + [
        point_res(p) for p in points_of("trained_encoders", "encoders")
    ]
    assessor = config["assess"]["assessor"]
    return {
        "summaries": [str(Path(f, "summary.csv")) for f in folders],
        "groups": [str(Path(f, "groups", f"{assessor}.json")) for f in folders],
    }
