# Copyright (c) mmseg_ext contributors. All rights reserved.
"""One plotting style: a Figure on its own Agg canvas, saved atomically.

No ``matplotlib.use(...)`` and no ``pyplot``: a global backend switch from a
library would change the backend of the user's own session (a notebook, a
GUI), and pyplot keeps every figure in its global registry until closed.
A :class:`matplotlib.figure.Figure` with a ``FigureCanvasAgg`` renders
without a display, is freed with its last reference, and is thread-safe per
figure.
"""
from typing import Sequence

from .io import atomic_path


def new_figure(figsize: Sequence[float] = (6.4, 4.8), **kwargs):
    """A ``matplotlib.figure.Figure`` with an Agg canvas attached.

    Args:
        figsize (Sequence[float]): ``(width, height)`` in inches.
            Defaults to ``(6.4, 4.8)`` (matplotlib's).
        **kwargs: More ``Figure`` arguments (``dpi``, ``layout``...).

    Returns:
        matplotlib.figure.Figure: Draw with ``fig.add_subplot`` /
        ``fig.subplots``; write with :func:`save_figure`.

    Examples:
        >>> fig = new_figure((4, 3))
        >>> ax = fig.add_subplot(1, 1, 1)
        >>> save_figure(fig, 'plot.png', dpi=100)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=tuple(figsize), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str, dpi: float = 100, **kwargs) -> None:
    """Write ``fig`` to ``path`` atomically (folders created).

    The format follows the extension of ``path`` (``.png``, ``.pdf``,
    ``.svg``...), unless ``format`` is given.

    Args:
        fig (matplotlib.figure.Figure): E.g. from :func:`new_figure`.
        path (str): Destination.
        dpi (float): Resolution. Defaults to 100.
        **kwargs: More ``Figure.savefig`` arguments.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, **kwargs)


__all__ = ['new_figure', 'save_figure']
