# Copyright (c) mmseg_ext contributors. All rights reserved.
import json

import numpy as np
import pytest

from mmseg_ext.models.segmentors.multilabel_encoder_decoder import \
    remove_small_components
from mmseg_ext.utils.threshold_search import (ProbabilityCache,
                                              competition_dice,
                                              component_table, image_counts,
                                              mean_dice, parse_range,
                                              plot_search, quantize_probs,
                                              search_threshold,
                                              threshold_level)


def _samples(num=6, size=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num):
        gt = np.zeros((size, size), np.uint8)
        if i % 3:  # every third tile is empty
            gt[5:15, 8:20] = 1
            gt[25:28, 25:35] = 1
        probs = np.clip(gt * 0.6 + rng.random((size, size)) * 0.5, 0, 1)
        if i % 3 == 0:  # isolated false-positive specks on empty tiles
            probs[[3, 20, 33], [30, 4, 17]] = 0.95
        out.append((quantize_probs(probs), gt))
    return out


def _brute_force(samples, t, a):
    counts = []
    for q, gt in samples:
        pred = (q.astype(np.float64) > threshold_level(t)).astype(np.uint8)
        pred = remove_small_components(pred, a)
        counts.append(((pred & gt).sum(), pred.sum(), gt.sum()))
    return competition_dice(np.array(counts)), mean_dice(np.array(counts))


def test_search_matches_brute_force_with_the_model_postprocessing():
    samples = _samples()
    thresholds = [0.3, 0.5, 0.7]
    min_areas = [0, 2, 10, 50]
    res = search_threshold(samples, thresholds, min_areas)
    for i, t in enumerate(thresholds):
        for j, a in enumerate(min_areas):
            (score, scored), plain = _brute_force(samples, t, a)
            assert res['score'][i][j] == pytest.approx(score)
            assert res['mean_dice'][i][j] == pytest.approx(plain)
            assert res['num_scored'][i][j] == scored
    best = res['best']
    flat = np.asarray(res['score'])
    assert best['score'] == pytest.approx(flat.max())
    assert res['num_images'] == 6
    # Noise specks on empty tiles are removed by a min_area: it must help.
    assert flat[:, 1].max() > flat[:, 0].max()


def test_component_table_and_counts_hand_built():
    mask = np.zeros((6, 6), np.uint8)
    mask[0, 0] = 1  # area 1, on truth
    mask[3:5, 3:6] = 1  # area 6, 2 on truth
    gt = np.zeros((6, 6), bool)
    gt[0, 0] = True
    gt[4, 4:6] = True
    areas, overlaps = component_table(mask, gt)
    assert sorted(zip(areas.tolist(), overlaps.tolist())) == [(1, 1), (6, 2)]
    probs = mask.astype(np.float32) * 0.9
    counts = image_counts(probs, gt.astype(np.uint8), [0.5], [0, 2, 7])
    assert counts[0].tolist() == [[3, 7, 3], [2, 6, 3], [0, 0, 3]]


def test_quantization_and_levels():
    assert quantize_probs(np.array([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]
    # one implementation, shared with the ensemble; uint8 is not re-scaled
    from mmseg_ext.utils import ensemble
    assert quantize_probs is ensemble.quantize_probs
    q = np.array([[0, 3, 128, 255]], np.uint8)
    assert quantize_probs(q) is q
    assert quantize_probs(quantize_probs(np.array([0.2, 0.7]))).tolist() == \
        [51, 178]
    assert threshold_level(0.5) == 127
    with pytest.raises(ValueError, match='`threshold` should be in'):
        threshold_level(1.0)


def test_cache_round_trip(tmp_path):
    cache = ProbabilityCache(str(tmp_path / 'cache'))
    assert not cache.exists()
    samples = _samples(3, size=36)
    for k, (q, gt) in enumerate(samples):
        gt = gt.copy()
        gt[0, 0] = 255  # ignored -> stored as 0
        cache.add(f'img{k}', q, gt)
    cache.save_index(dict(source='test'))
    loaded = ProbabilityCache.load(str(tmp_path / 'cache'))
    assert len(loaded) == 3 and loaded.meta == dict(source='test')
    for (key, q, gt), (q0, gt0) in zip(loaded, samples):
        np.testing.assert_array_equal(q, q0)
        expected = gt0.copy()
        expected[0, 0] = 0
        np.testing.assert_array_equal(gt, expected)
        assert q.dtype == np.uint8


def test_plot_and_parse_range(tmp_path):
    res = search_threshold(_samples(3), [0.4, 0.6], [0, 5])
    plot_search(res, str(tmp_path / 'grid.png'))
    assert (tmp_path / 'grid.png').stat().st_size > 1000
    json.dumps(res)  # JSON-able
    assert parse_range('0.3:0.5:0.1') == [0.3, 0.4, 0.5]
    assert parse_range('0,10,50', int) == [0, 10, 50]
    with pytest.raises(ValueError, match='start:stop:step'):
        parse_range('1:2')


def test_search_validation():
    with pytest.raises(ValueError, match='no validation samples'):
        search_threshold([], [0.5], [0])
    with pytest.raises(ValueError, match='should not be empty'):
        search_threshold(_samples(1), [], [0])
    with pytest.raises(ValueError, match='`min_areas` should be >= 0'):
        search_threshold(_samples(1), [0.5], [-1])
