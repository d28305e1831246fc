"""Matplotlib without a display, and PNGs whose bytes depend only on what is drawn."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from isaac.io import atomic_path  # noqa: E402


@dataclass(frozen=True)
class FigureConfig:
    """The report slice every figure rule reads."""

    dpi: int


def save_png(fig, out, dpi: int) -> None:
    """Write the figure atomically, without the software tag, and close it."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
    plt.close(fig)


__all__ = ["FigureConfig", "plt", "save_png"]
