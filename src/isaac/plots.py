"""Matplotlib without a display, and PNGs whose bytes depend only on what is drawn.

``plt`` (matplotlib.pyplot on the Agg backend) is imported on first use: the Snakefile reads
FIGURES from this module, and importing pyplot would slow every Snakemake start (every dry run,
and every job on a cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

from isaac.io import atomic_path

# Every figure of a run, results/{corpus}/figures/{name}.png, with the rule that draws it.
FIGURES = {
    "longtail_responses": "longtail_responses",
    "longtail_ngrams": "longtail_ngrams",
    "group_sizes": "group_sizes",
    "oracle_safe_rate_vs_tau": "oracle_safe_rate_vs_tau",
    "safety_vs_distinct2": "report_figures",
    "oracle_vs_model_safety": "report_figures",
    "safety_vs_relevance": "report_figures",
}
# `make figures` reruns these: every figure rule, and the summary the report figures draw from.
REDRAW_RULES = ("summary", *dict.fromkeys(FIGURES.values()))


@dataclass(frozen=True)
class ReportConfig:
    """The report section every figure rule reads."""

    dpi: int


def _pyplot():
    """matplotlib.pyplot, on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def __getattr__(name: str):
    if name == "plt":
        return _pyplot()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def save_png(fig, out, dpi: int) -> None:
    """Write the figure atomically, without the software tag, and close it."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
    _pyplot().close(fig)


__all__ = ["FIGURES", "REDRAW_RULES", "ReportConfig", "save_png"]
