"""A plot written as a PNG file, atomically, by matplotlib's file backend (no display needed)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def png_axes(path: str | Path, figsize: tuple[float, float] = (7, 5), dpi: int = 100):
    """The axes of a new figure, written to ``path`` as a PNG when the block ends (nothing when it raises)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_write

    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    try:
        yield ax
        fig.tight_layout()
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
