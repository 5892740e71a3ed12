# Copyright (c) mmseg_ext contributors. All rights reserved.
import json
import math

import numpy as np
import pytest

from mmseg_ext.utils import (class_weight_table, compute_class_weights,
                             save_class_weight_report)

COUNTS = [60, 30, 10]  # N = 100, C = 3, f = (0.6, 0.3, 0.1)


@pytest.mark.parametrize('method,counts,kwargs,expected', [
    ('inverse_freq', COUNTS, {}, [100 / 180, 100 / 90, 100 / 30]),
    ('sqrt_inv_freq', COUNTS, {},
     [1 / math.sqrt(0.6), 1 / math.sqrt(0.3), 1 / math.sqrt(0.1)]),
    # (1 - b) / (1 - b**n) with b = 0.5: 0.5/0.5, 0.5/0.75, 0.5/0.875
    ('effective_num', [1, 2, 3], dict(beta=0.5), [1.0, 2 / 3, 4 / 7]),
    ('median_freq', COUNTS, {}, [0.5, 1.0, 3.0]),
    # even number of classes: median f = (0.3 + 0.2) / 2 = 0.25
    ('median_freq', [40, 30, 20, 10], {}, [0.625, 0.25 / 0.3, 1.25, 2.5]),
])
def test_methods_raw(method, counts, kwargs, expected):
    w = compute_class_weights(counts, method, normalize=None, **kwargs)
    assert w.dtype == np.float64 and w.shape == (len(counts), )
    assert w.tolist() == pytest.approx(expected)


def test_effective_num_large_counts_stable():
    # beta**n underflows to 0 for pixel counts: weights -> (1 - beta).
    w = compute_class_weights([10**9, 10**7], 'effective_num', beta=0.9999,
                              normalize=None)
    assert w.tolist() == pytest.approx([1e-4, 1e-4])
    w = compute_class_weights([10**9, 10**5], 'effective_num',
                              beta=1 - 1e-6, normalize=None)
    assert w[1] / w[0] == pytest.approx(1 / (1 - math.exp(-0.1)), rel=1e-4)


def test_normalize_mean_and_sum():
    w = compute_class_weights(COUNTS, 'inverse_freq')
    assert w.tolist() == pytest.approx([1 / 3, 2 / 3, 2.0])
    assert w.mean() == pytest.approx(1.0)
    w = compute_class_weights(COUNTS, 'inverse_freq', normalize='sum')
    assert w.sum() == pytest.approx(3.0)


def test_max_ratio_clips_large_weights():
    # raw (5/9, 10/9, 30/9); cap = min * 4 = 20/9; then mean 1.
    w = compute_class_weights(COUNTS, 'inverse_freq', max_ratio=4)
    assert w.tolist() == pytest.approx([3 / 7, 6 / 7, 12 / 7])
    assert w.max() / w.min() == pytest.approx(4.0)
    w = compute_class_weights(COUNTS, 'inverse_freq', max_ratio=100)
    assert w.tolist() == pytest.approx([1 / 3, 2 / 3, 2.0])
    w = compute_class_weights(COUNTS, 'inverse_freq', max_ratio=1)
    assert w.tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_zero_pixel_class_warns_and_is_finite():
    counts = [60, 30, 0, 10]
    with pytest.warns(UserWarning, match="2 \\('road'\\)"):
        w = compute_class_weights(
            counts, 'inverse_freq', normalize=None,
            class_names=['bg', 'field', 'road', 'car'])
    # raw 100 / (4 n): (5/12, 5/6, -, 5/2); absent gets the largest.
    assert w.tolist() == pytest.approx([5 / 12, 5 / 6, 2.5, 2.5])
    with pytest.warns(UserWarning, match='no labelled pixels'):
        w = compute_class_weights(counts, 'median_freq')
    assert np.all(np.isfinite(w))
    assert w[[0, 1, 3]].mean() == pytest.approx(1.0)  # present classes
    with pytest.warns(UserWarning):
        w = compute_class_weights(counts, 'inverse_freq', normalize='sum')
    assert w.tolist() == pytest.approx([4 / 15, 8 / 15, 1.6, 1.6])


@pytest.mark.parametrize('counts,kwargs,match', [
    ([10, -1, 5], {}, 'should be >= 0'),
    ([0, 0, 0], {}, 'all counts are zero'),
    ([[1, 2]], {}, '1-D'),
    ([1, float('nan')], {}, 'finite'),
    ([1, 2], dict(method='focal'), '`method` should be one of'),
    ([1, 2], dict(method='effective_num', beta=1.0), '`beta`'),
    ([1, 2], dict(beta=0.0), '`beta`'),
    ([1, 2], dict(max_ratio=0.5), '`max_ratio` should be >= 1'),
    ([1, 2], dict(normalize='max'), '`normalize`'),
    ([1, 2], dict(class_names=['a']), '`class_names`'),
])
def test_validation(counts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compute_class_weights(counts, **kwargs)


def test_table_and_report(tmp_path):
    names = ['bg', 'field', 'car']
    w = compute_class_weights(COUNTS, 'median_freq')
    table = class_weight_table(names, COUNTS, w)
    assert 'frequency' in table and 'car' in table and '0.100000' in table
    paths = save_class_weight_report(
        str(tmp_path), names, COUNTS, w, dict(method='median_freq'))
    data = json.loads((tmp_path / 'class_weights.json').read_text())
    assert data['classes'] == names and data['counts'] == COUNTS
    assert data['frequencies'] == pytest.approx([0.6, 0.3, 0.1])
    assert data['weights'] == pytest.approx(w.tolist())
    assert data['method'] == 'median_freq'
    with open(paths['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert not list(tmp_path.glob('.*'))  # no temporary files left


@pytest.mark.parametrize('kwargs, match', [
    (dict(method='nope'), '`method` should be one of'),
    (dict(beta=1.0), r'`beta` should be in \(0, 1\)'),
    (dict(normalize='max'), '`normalize` should be one of'),
    (dict(max_ratio=0.5), '`max_ratio` should be >= 1'),
])
def test_check_class_weight_args(kwargs, match):
    from mmseg_ext.utils.class_weights import check_class_weight_args
    args = dict(method='inverse_freq', beta=0.99, normalize='mean',
                max_ratio=None)
    check_class_weight_args(**args)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        check_class_weight_args(**args)
