# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The dense CRF as an option of the ensemble (``--crf`` / ``--no-crf``).

One probability folder of two hand-built 48 x 48 images: a noisy blob
(the CRF cleans it) and a 1-pixel line (the CRF erases it), as in
``tests/test_utils/test_dense_crf.py``; the grey images hold the blob.
"""
import builtins
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmseg_ext.apis.ensemble import (CRFUnavailableError, Ensemble,
                                     ProbDirMember, ThresholdsError,
                                     ensemble_test, ensemble_val, load_probs,
                                     load_thresholds, save_probs)
from mmseg_ext.apis.ensemble.crf import check_crf_params, item_image
from mmseg_ext.apis.ensemble.merge import EnsembleItem
from mmseg_ext.utils.dense_crf import DEFAULT_CRF_PARAMS, dense_crf
from mmseg_ext.utils.ensemble import dequantize_probs
from mmseg_ext.utils.multilabel import (pack_multilabel, read_packed_label,
                                        unpack_multilabel, write_packed_label)

H = W = 48
CLASSES = ['blob', 'line']
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _case(seed):
    rng = np.random.default_rng(seed)
    blob = np.zeros((H, W), np.uint8)
    blob[12:36, 14:34] = 1
    line = np.zeros((H, W), np.uint8)
    line[:, 40] = 1
    image = np.where(blob, 200, 40).astype(np.uint8)
    noisy = np.clip(
        np.where(blob, 0.65, 0.35) + rng.normal(0, 0.2, (H, W)), 0, 1)
    sharp = np.where(line, 0.9, 0.1)
    return np.stack([noisy, sharp]), image, np.stack([blob, line])


@pytest.fixture
def data(tmp_path):
    """``(probability folder, gt folder, image folder)`` of 2 images."""
    for seed in range(2):
        probs, image, gt = _case(seed)
        save_probs(str(tmp_path / 'probs' / f'{seed}.npy'), probs)
        write_packed_label(str(tmp_path / 'gt' / f'{seed}.png'),
                           pack_multilabel(gt))
        (tmp_path / 'img').mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / 'img' / f'{seed}.png'), image)
    return (str(tmp_path / 'probs'), str(tmp_path / 'gt'),
            str(tmp_path / 'img'))


def _ensemble(data):
    return Ensemble([ProbDirMember(data[0])],
                    gt_dir=data[1],
                    gt_format='packed',
                    classes=CLASSES)


@pytest.fixture
def no_densecrf(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith('pydensecrf'):
            raise ImportError('No module named pydensecrf')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', fake_import)


def test_val_keeps_crf_for_the_blob_only(data, tmp_path):
    pytest.importorskip('pydensecrf')
    out = str(tmp_path / 'val')
    result = ensemble_val(_ensemble(data),
                          out,
                          candidates=[0.5],
                          postprocess=True,
                          crf=True,
                          img_dir=data[2],
                          progress=False)
    saved = json.loads(open(osp.join(out, 'thresholds.json')).read())
    assert saved['crf'] == result['crf'] == dict(classes=['blob'],
                                                 params=DEFAULT_CRF_PARAMS)
    dice = saved['crf_report']['dice']
    assert dice['blob']['crf'] > 0.95 > 0.7 > dice['blob']['none']
    assert dice['line']['crf'] < 0.1 and dice['line']['none'] == 1.0
    assert dice['blob']['none'] == pytest.approx(saved['dice'][0])
    assert saved['crf_report']['seconds_per_image'] > 0
    # post-processing is measured on the masks after the CRF (blob)
    pp = saved['postprocess_report']
    assert pp['blob']['none'] == pytest.approx(dice['blob']['crf'])
    assert pp['line']['none'] == pytest.approx(dice['line']['none'])
    # the file reads back; a file without "crf" (older) means no CRF
    spec = load_thresholds(osp.join(out, 'thresholds.json'), 2)
    assert spec['crf'] == dict(classes=['blob'], params=DEFAULT_CRF_PARAMS)
    del saved['crf'], saved['crf_report']
    old = tmp_path / 'old.json'
    old.write_text(json.dumps(saved))
    assert load_thresholds(str(old), 2)['crf'] is None
    assert load_thresholds(0.5, 2)['crf'] is None


def test_test_applies_crf_to_kept_classes_only(data, tmp_path):
    pytest.importorskip('pydensecrf')
    thr = tmp_path / 'thr.json'
    thr.write_text(
        json.dumps(
            dict(classes=CLASSES,
                 thresholds=[0.5, 0.5],
                 strategy='soft',
                 crf=dict(classes=['blob'], params=dict(iterations=5)))))
    result = ensemble_test(_ensemble(data),
                           str(tmp_path / 'crf'),
                           str(thr),
                           img_dir=data[2],
                           progress=False)
    assert result['crf']['classes'] == ['blob']
    ensemble_test(_ensemble(data),
                  str(tmp_path / 'raw'),
                  str(thr),
                  use_crf=False,
                  progress=False)
    for seed in range(2):
        merged = dequantize_probs(load_probs(osp.join(data[0], f'{seed}.npy')))
        image = cv2.imread(osp.join(data[2], f'{seed}.png'), 0)
        with_crf, raw = (unpack_multilabel(
            read_packed_label(str(tmp_path / d / f'{seed}.png'), 2), 2)
                         for d in ('crf', 'raw'))
        expected = dense_crf(merged, image, [0]) > 0.5
        assert np.array_equal(with_crf[0], expected[0])
        assert np.array_equal(with_crf[1], merged[1] > 0.5)  # not refined
        assert np.array_equal(raw, merged > 0.5)
    # the kept classes need the images
    with pytest.raises(ValueError, match='--img-dir'):
        ensemble_test(_ensemble(data),
                      str(tmp_path / 'x'),
                      str(thr),
                      progress=False)


@pytest.mark.parametrize('entry, match', [
    (dict(classes='blob'), r'field "crf"'),
    (dict(classes=['bone']), r"'bone'"),
    (dict(classes=['blob'], params=dict(iters=3)), r"\['iters'\]"),
    (dict(classes=['blob'], params=dict(bilateral_srgb=-1)), 'positive'),
])
def test_bad_crf_entry_names_the_field(tmp_path, entry, match):
    path = tmp_path / 'thr.json'
    path.write_text(
        json.dumps(dict(classes=CLASSES, thresholds=[0.5, 0.5], crf=entry)))
    with pytest.raises(ThresholdsError, match=match) as err:
        load_thresholds(str(path), 2)
    assert err.value.path == str(path)
    assert '\n' not in str(err.value)


def test_params_and_image(tmp_path):
    assert check_crf_params(dict(iterations=2.0))['iterations'] == 2
    with pytest.raises(ValueError, match='iterations'):
        check_crf_params(dict(iterations=1.5))
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((20, 30, 3), 90, np.uint8))
    item = EnsembleItem('a', 'a.png', 'a', [], img_path=None)
    grey = item_image(item, (10, 15), str(tmp_path))  # resized
    assert grey.shape == (10, 15) and grey.dtype == np.uint8
    assert (grey == 90).all()
    item.img_path = str(tmp_path / 'a.png')  # a model member's sample
    assert item_image(item, (20, 30)).shape == (20, 30)
    with pytest.raises(ValueError, match='--img-dir'):
        item_image(EnsembleItem('a', 'a.png', 'a', []), (20, 30))
    # nested folders (hand bone: DCM/{ID}/{name}.png): the one such name
    nested = tmp_path / 'DCM' / 'ID001'
    nested.mkdir(parents=True)
    cv2.imwrite(str(nested / 'b.png'), np.full((4, 4), 7, np.uint8))
    b = EnsembleItem('b', 'b.png', 'b', [])
    assert (item_image(b, (4, 4), str(tmp_path / 'DCM')) == 7).all()
    (tmp_path / 'DCM' / 'ID002').mkdir()
    cv2.imwrite(str(tmp_path / 'DCM' / 'ID002' / 'c.png'), grey)
    cv2.imwrite(str(nested / 'c.png'), grey)
    with pytest.raises(ValueError, match="2 images named 'c.png'"):
        item_image(EnsembleItem('c', 'c.png', 'c', []), (4, 4),
                   str(tmp_path / 'DCM'))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        item_image(EnsembleItem('d', 'd.png', 'd', []), (4, 4),
                   str(tmp_path / 'DCM'))


def test_missing_package_fails_at_once(data, tmp_path, no_densecrf):
    out = tmp_path / 'val'
    with pytest.raises(CRFUnavailableError,
                       match='pip install pydensecrf2') as err:
        ensemble_val(_ensemble(data),
                     str(out),
                     crf=True,
                     img_dir=data[2],
                     progress=False)
    assert '\n' not in str(err.value)
    assert not (out / 'thresholds.json').exists()
    thr = tmp_path / 'thr.json'
    thr.write_text(
        json.dumps(
            dict(classes=CLASSES,
                 thresholds=[0.5, 0.5],
                 crf=dict(classes=['blob']))))
    with pytest.raises(CRFUnavailableError, match='--no-crf'):
        ensemble_test(_ensemble(data),
                      str(tmp_path / 't'),
                      str(thr),
                      img_dir=data[2],
                      progress=False)
    # --no-crf needs no package
    ensemble_test(_ensemble(data),
                  str(tmp_path / 't'),
                  str(thr),
                  use_crf=False,
                  progress=False)


def test_tool_crf_error_is_one_line(data, tmp_path, no_densecrf, capsys):
    spec = importlib.util.spec_from_file_location(
        'ensemble_tool', osp.join(REPO, 'tools', 'ensemble.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as exit_:
        tool.main([
            '--prob-dirs', data[0], '--split', 'val', '--gt-dir', data[1],
            '--img-dir', data[2], '--classes', *CLASSES, '--out-dir',
            str(tmp_path / 'val'), '--crf'
        ])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'pip install pydensecrf2' in lines[0]
