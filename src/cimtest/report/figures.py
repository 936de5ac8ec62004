"""A matplotlib figure (Agg, no display) and its PNG bytes: the canvas of every report plot."""

from __future__ import annotations

import io

__all__ = ["figure", "png"]


def figure(width: float = 6.0, height: float = 4.0, columns: int = 1, rows: int = 1):
    """``plt.subplots`` on the Agg backend: (fig, axes), axes always 2-D (rows, columns)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    return plt.subplots(rows, columns, figsize=(width, height), dpi=100, squeeze=False)


def png(fig) -> bytes:
    """`fig` laid out tightly as PNG bytes; the figure is closed."""
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
