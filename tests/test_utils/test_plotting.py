# Copyright (c) mmseg_ext contributors. All rights reserved.
import os

import numpy as np
import pytest

from mmseg_ext.utils.plotting import new_figure, save_figure


def test_new_figure_save_figure(tmp_path):
    fig = new_figure((3, 2))
    assert tuple(fig.get_size_inches()) == (3, 2)
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    path = tmp_path / 'sub' / 'plot.png'
    save_figure(fig, str(path), dpi=50)
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # the format follows the extension; no temporary file is left behind
    save_figure(fig, str(tmp_path / 'plot.svg'))
    assert (tmp_path / 'plot.svg').read_text().lstrip().startswith('<?xml')
    assert sorted(os.listdir(tmp_path)) == ['plot.svg', 'sub']


def test_save_figure_failure_leaves_no_file(tmp_path):
    fig = new_figure()
    with pytest.raises(ValueError):
        save_figure(fig, str(tmp_path / 'plot.png'), format='no-such-format')
    assert os.listdir(tmp_path) == []


def test_no_global_backend_switch(tmp_path, monkeypatch):
    """Plotting through the package never switches matplotlib's backend
    (a user's notebook keeps its own) nor keeps figures in pyplot."""
    import matplotlib
    import matplotlib.pyplot as plt

    from mmseg_ext.utils.class_weights import plot_class_weights
    from mmseg_ext.utils.threshold_search import plot_search, search_threshold

    def forbidden(*args, **kwargs):
        raise AssertionError('matplotlib.use() called')

    monkeypatch.setattr(matplotlib, 'use', forbidden)
    monkeypatch.setattr(plt, 'switch_backend', forbidden)
    figures = plt.get_fignums()
    plot_class_weights(['a', 'b'], [3, 1], [0.5, 1.5], str(tmp_path / 'w.png'))
    probs = np.array([[0.9, 0.2], [0.1, 0.8]])
    plot_search(search_threshold([(probs, np.eye(2))], [0.3, 0.5], [0, 2]),
                str(tmp_path / 's.png'))
    assert plt.get_fignums() == figures
    assert (tmp_path / 'w.png').is_file() and (tmp_path / 's.png').is_file()
