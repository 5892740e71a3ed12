# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Dense CRF (optional pydensecrf2): it cleans a noisy blob on an image
edge and erases a 1-pixel line (the reference team's over-smoothing), so
the keep-if-it-helps rule keeps it for the first class only."""
import numpy as np
import pytest

from mmseg_ext.utils import dense_crf as crf_mod
from mmseg_ext.utils.dense_crf import (dense_crf, dense_crf_probability,
                                       select_dense_crf)
from mmseg_ext.utils.postprocess import dice_per_class

pytest.importorskip('pydensecrf')
H = W = 48


def _case(seed):
    rng = np.random.default_rng(seed)
    blob = np.zeros((H, W), np.uint8)
    blob[12:36, 14:34] = 1
    line = np.zeros((H, W), np.uint8)
    line[:, 40] = 1
    image = np.where(blob, 200, 40).astype(np.uint8)
    noisy = np.clip(np.where(blob, 0.65, 0.35) + rng.normal(0, 0.2, (H, W)),
                    0, 1)
    sharp = np.where(line, 0.9, 0.1)
    probs = np.stack([noisy, sharp]).astype(np.float32)
    return probs, image, np.stack([blob, line])


def test_crf_cleans_a_blob_and_erases_a_thin_line():
    probs, image, gt = _case(0)
    before = dice_per_class(probs > 0.5, gt)
    after = dice_per_class(dense_crf(probs, image) > 0.5, gt)
    assert before[0] < 0.7 and after[0] > 0.95
    assert before[1] == 1.0 and after[1] < 0.1
    one = dense_crf_probability(probs[0], np.repeat(image[..., None], 3, 2))
    assert one.shape == (H, W) and one.dtype == np.float32
    assert np.all((one >= 0) & (one <= 1))


def test_kept_only_where_validation_dice_rises():
    kept, report = select_dense_crf((_case(s) for s in range(2)),
                                    ['blob', 'line'])
    assert kept == ['blob']
    assert report['blob']['crf'] > report['blob']['none']
    assert report['line']['crf'] < report['line']['none'] == 1.0


def test_bad_image_and_missing_package(monkeypatch):
    probs, image, _ = _case(0)
    with pytest.raises(ValueError, match='image'):
        dense_crf_probability(probs[0], image[:10])
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith('pydensecrf'):
            raise ImportError('No module named pydensecrf')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', fake_import)
    with pytest.raises(ImportError, match='pip install pydensecrf2'):
        crf_mod.import_densecrf()
