# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Prediction analysis (``mmseg_ext/apis/analyze_predictions.py``,
``tools/analysis_tools/analyze_predictions.py``) on hand-built predictions
with hand-computed Dice, area bins and agreement.

Softmax case: 3 classes, two 40 x 40 images. Image ``a``: class 1 a 2 x 2
square (4 px), class 2 a 20 x 20 square (400 px), class 0 the rest (1196
px); image ``b``: class 2 a 10 x 10 square (100 px), class 0 the rest.
Model A (probabilities) is perfect on ``a`` and misses the class-2 square
of ``b``; model B (class-index PNGs) misses the class-1 square of ``a`` and
is perfect on ``b``.
"""
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest

from mmseg_ext.apis.analyze_predictions import (AREA_BINS,
                                                PredictionInputError,
                                                analyze_predictions,
                                                area_bin, suggest_members)
from mmseg_ext.apis.ensemble import load_scores, save_probs
from mmseg_ext.evaluation.metrics.per_class_json import read_per_class_json
from mmseg_ext.utils.multilabel import pack_multilabel, write_packed_label

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EPS = 1e-4


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'analyze_predictions_tool',
        osp.join(ROOT, 'tools', 'analysis_tools', 'analyze_predictions.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _onehot(label, c=3):
    return (label[None] == np.arange(c).reshape(-1, 1, 1)).astype(
        np.uint8) * 255


@pytest.fixture(scope='module')
def softmax_case(tmp_path_factory):
    base = tmp_path_factory.mktemp('analyze_softmax')
    gt_a = np.zeros((40, 40), np.uint8)
    gt_a[0:2, 0:2] = 1
    gt_a[20:40, 20:40] = 2
    gt_b = np.zeros((40, 40), np.uint8)
    gt_b[0:10, 30:40] = 2
    a_b = np.zeros_like(gt_b)  # model A misses the square of b
    b_a = gt_a.copy()
    b_a[0:2, 0:2] = 0  # model B misses the class-1 square of a
    (base / 'gt' / 'sub').mkdir(parents=True)  # searched recursively
    for stem, gt in (('a', gt_a), ('b', gt_b)):
        cv2.imwrite(str(base / 'gt' / 'sub' / f'{stem}.png'), gt)
    save_probs(str(base / 'A' / 'a.npy'), _onehot(gt_a))
    save_probs(str(base / 'A' / 'b.npy'), _onehot(a_b))
    (base / 'B').mkdir()
    cv2.imwrite(str(base / 'B' / 'a.png'), b_a)
    cv2.imwrite(str(base / 'B' / 'b.png'), gt_b)
    return base


def _expected_softmax():
    a = [(1 + 3000 / 3100) / 2, 1.0, (1 + EPS / (100 + EPS)) / 2]
    b = [(2 * 1196 / 2396 + 1) / 2, (EPS / (4 + EPS) + 1) / 2, 1.0]
    return np.array([a, b])


def test_softmax_dice_bins_agreement_members(softmax_case, tmp_path):
    base = softmax_case
    out = str(tmp_path / 'out')
    result = analyze_predictions(
        [str(base / 'A'), str(base / 'B')], str(base / 'gt'), out,
        gt_format='label', classes=['bg', 'small', 'big'],
        show_progress=False)
    assert result['decision'] == 'argmax'
    assert result['num_images'] == 2
    np.testing.assert_allclose(result['dice'], _expected_softmax(),
                               rtol=1e-9)
    # area bins: class 1 in a (0.0025), class 2 in b (0.0625) and a (0.25)
    counts = np.asarray(result['area_bins']['count'])
    assert counts.tolist() == [[0, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 1]]
    mean = result['area_bins']['mean_dice']
    assert mean[0][2][2] == pytest.approx(EPS / (100 + EPS))  # A, big, b
    assert mean[1][2][2] == pytest.approx(1.0)
    assert mean[1][1][1] == pytest.approx(EPS / (4 + EPS))  # B misses it
    # agreement: summed counts over both images
    per_class = np.asarray(result['agreement_per_class'])
    assert per_class[:, 0, 1] == pytest.approx(
        [5392 / 5496, 0.0, 800 / 900])
    assert per_class[:, 0, 0] == pytest.approx([1, 1, 1])
    assert result['agreement'][0][1] == pytest.approx(6192 / 6400)
    assert result['most_disagreed'] == ['small', 'big', 'bg']
    assert result['best_per_class'] == dict(bg='B', small='A', big='B')
    assert result['members'] == ['A', 'B']
    # the scores JSONs are read by tools/ensemble.py --scores
    scores, classes = load_scores([m['scores'] for m in result['models']])
    np.testing.assert_allclose(scores, _expected_softmax(), rtol=1e-9)
    assert classes == ['bg', 'small', 'big']
    cmd = result['command']
    assert '--strategy classwise' in cmd and '--decision argmax' in cmd
    # B gave masks: a --member placeholder first, then A's --prob-dirs;
    # --scores in that order
    assert cmd.index('--member CONFIG_OF_B') < cmd.index('--prob-dirs')
    assert cmd.split('--scores ')[1].split()[:2] == [
        result['models'][1]['scores'], result['models'][0]['scores']]
    text = open(osp.join(out, 'analysis.md')).read()
    assert '| small | **1.0000** | 0.5000 |' in text
    for name in ('area_dice.png', 'agreement.png', 'per_image.csv',
                 'area_dice.csv', 'agreement.csv', 'analysis.json'):
        assert osp.isfile(osp.join(out, name)), name
    rows = open(osp.join(out, 'per_image.csv')).read().splitlines()
    assert rows[0] == 'image,class,area_px,area_fraction,dice_A,dice_B'
    assert len(rows) == 1 + 5  # (image, present class) pairs


def test_packed_multilabel_threshold(tmp_path):
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[0, 0:5] = 1
    gt[1, :, 0:5] = 1
    ignore = np.zeros((10, 10), bool)
    ignore[9] = True
    write_packed_label(str(tmp_path / 'gt' / 'x.png'),
                       pack_multilabel(gt, ignore))
    probs = np.full((2, 10, 10), 51, np.uint8)  # 0.2
    probs[0, 0:5] = 230  # 0.9
    probs[1, :, 0:5] = 153  # 0.6 (the ignored row too)
    save_probs(str(tmp_path / 'P' / 'x.npy'), probs)
    q = np.zeros((2, 10, 10), np.uint8)
    q[0, 0:4] = 1
    write_packed_label(str(tmp_path / 'Q' / 'x.png'), pack_multilabel(q))
    result = analyze_predictions(
        [str(tmp_path / 'P'), str(tmp_path / 'Q')], str(tmp_path / 'gt'),
        str(tmp_path / 'out'), show_progress=False, plot=False)
    assert result['decision'] == 'threshold'
    np.testing.assert_allclose(
        result['dice'], [[1.0, 1.0], [80 / 90, EPS / (45 + EPS)]],
        rtol=1e-6)
    assert np.asarray(result['agreement_per_class'])[:, 0, 1] == \
        pytest.approx([80 / 90, 0.0])
    assert result['members'] == ['P']
    assert 'best model on every class' in open(
        tmp_path / 'out' / 'analysis.md').read()
    data = read_per_class_json(result['models'][0]['scores'])
    assert data['classes'] == ['0', '1']


def test_area_bin_and_members():
    assert [area_bin(f) for f in (1e-5, 1e-3, 0.0025, 0.05, 0.5, 1.0)] == \
        [0, 0, 1, 2, 3, 3]
    assert len(AREA_BINS) == 5
    members, best = suggest_members(
        np.array([[0.5, np.nan, 0.9], [0.5, 0.1, 0.2]]), ['x', 'y'])
    assert best == [0, 1, 0] and members == [0, 1]
    # a tie goes to the better model on average: x only ties, no member
    members, best = suggest_members(np.array([[0.5, 0.1], [0.5, 0.9]]),
                                    ['x', 'y'])
    assert best == [1, 1] and members == [1]


def test_bad_inputs(softmax_case, tmp_path):
    base = softmax_case
    with pytest.raises(PredictionInputError, match='does not exist'):
        analyze_predictions([str(tmp_path / 'nope')], str(base / 'gt'),
                            str(tmp_path / 'o'), gt_format='label',
                            num_classes=3, show_progress=False)
    save_probs(str(tmp_path / 'C4' / 'a.npy'), np.zeros((4, 40, 40),
                                                        np.uint8))
    with pytest.raises(PredictionInputError, match='different class counts'):
        analyze_predictions([str(base / 'A'), str(tmp_path / 'C4')],
                            str(base / 'gt'), str(tmp_path / 'o'),
                            gt_format='label', show_progress=False)
    save_probs(str(tmp_path / 'Z' / 'zzz.npy'), np.zeros((3, 40, 40),
                                                         np.uint8))
    with pytest.raises(PredictionInputError, match="no ground truth.*'zzz'"):
        analyze_predictions([str(tmp_path / 'Z')], str(base / 'gt'),
                            str(tmp_path / 'o'), gt_format='label',
                            show_progress=False)
    save_probs(str(tmp_path / 'S' / 'a.npy'), np.zeros((3, 20, 40),
                                                       np.uint8))
    with pytest.raises(PredictionInputError, match=r"model 'S'.*shape"):
        analyze_predictions([str(tmp_path / 'S')], str(base / 'gt'),
                            str(tmp_path / 'o'), gt_format='label',
                            show_progress=False)


def test_cli(softmax_case, tmp_path, capsys):
    tool = _load_tool()
    base = softmax_case
    tool.main([str(base / 'A'), str(base / 'B'), '--gt-dir',
               str(base / 'gt'), '--gt-format', 'label', '--out',
               str(tmp_path / 'cli'), '--no-progress', '--no-plots',
               '--names', 'first', 'second'])
    out = capsys.readouterr().out
    assert 'suggested classwise members: first, second' in out
    assert osp.isfile(tmp_path / 'cli' / 'scores' / 'first.json')
    with pytest.raises(SystemExit) as exc:
        tool.main([str(base / 'B'), '--gt-dir', str(base / 'gt'),
                   '--gt-format', 'label', '--out', str(tmp_path / 'x'),
                   '--no-progress'])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'class count' in err[0]
