# Copyright (c) mmseg_ext contributors. All rights reserved.
"""RareClassCopyPaste on hand-built masks and in MultiImageMixDataset."""
import os

import numpy as np
import pytest
from mmseg.registry import DATASETS, TRANSFORMS

from mmseg_ext.datasets.transforms import paste_objects
from mmseg_ext.utils.multilabel import (pack_multilabel, unpack_multilabel)


def source_map():
    """8x8 class map: a 2x2 'car' (3) at rows/cols 1-2, one lone car pixel
    at (6, 6), road (2) elsewhere; image = distinct values per pixel."""
    label = np.full((8, 8), 2, np.uint8)
    label[1:3, 1:3] = 3
    label[6, 6] = 3
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    return img, label


def test_class_map_paste_takes_the_class_and_the_pixels():
    src_img, src_label = source_map()
    img = np.zeros((10, 10, 3), np.uint8)
    label = np.full((10, 10), 255, np.uint8)  # all ignored: pasted anyway
    rng = np.random.default_rng(0)
    pixels = paste_objects(img, label, src_img, src_label, 3, rng,
                           max_objects=1, min_area=2)
    assert pixels == 4  # the lone pixel is below min_area
    ys, xs = np.nonzero(label == 3)
    assert len(ys) == 4 and np.ptp(ys) == 1 and np.ptp(xs) == 1
    assert set(np.unique(label)) == {3, 255}
    y0, x0 = ys.min(), xs.min()
    assert (img[y0:y0 + 2, x0:x0 + 2] == src_img[1:3, 1:3]).all()
    assert (img[label == 255] == 0).all()  # nothing else touched
    # scale 2 (nearest): the 2x2 object becomes 4x4; both components.
    label2 = np.zeros((10, 10), np.uint8)
    img2 = np.zeros((10, 10, 3), np.uint8)
    pixels = paste_objects(img2, label2, src_img, src_label, 3,
                           np.random.default_rng(1), max_objects=2,
                           scale=(2.0, 2.0))
    assert pixels == 16 + 4 and (label2 == 3).sum() <= 20
    assert paste_objects(img2, label2, src_img, src_label, 1,
                         np.random.default_rng(0)) == 0  # no class 1


def test_flip_mirrors_image_and_label_together():
    src_img, src_label = source_map()
    src_label[1, 1] = 2  # an L-shaped car: rows 1-2, cols 1-2 minus (1, 1)
    img = np.zeros((2, 2, 3), np.uint8)
    label = np.zeros((2, 2), np.uint8)
    paste_objects(img, label, src_img, src_label, 3,
                  np.random.default_rng(0), min_area=2, flip_prob=1.0)
    # Mirrored: (0, 0) now car, (0, 1) not; image mirrored with it.
    assert label.tolist() == [[3, 0], [3, 3]]
    assert (img[0, 0] == src_img[1, 2]).all()
    assert (img[1, 0] == src_img[2, 2]).all()
    assert (img[0, 1] == 0).all()


def test_packed_paste_keeps_overlaps():
    c = 3
    masks = np.zeros((c, 6, 6), bool)
    masks[0, 0:3, 0:3] = True
    masks[1, 1:4, 1:4] = True  # overlaps class 0 on rows/cols 1-2
    ignore = np.zeros((6, 6), bool)
    ignore[5, :] = True
    src = pack_multilabel(masks, ignore)
    tmasks = np.zeros((c, 5, 5), bool)
    tmasks[2] = True
    target = pack_multilabel(tmasks)
    img = np.zeros((5, 5, 3), np.uint8)
    src_img = np.full((6, 6, 3), 7, np.uint8)
    pixels = paste_objects(img, target, src_img, src, 1,
                           np.random.default_rng(0))
    assert pixels == 9
    out = unpack_multilabel(target, c)
    pasted = out[1] == 1
    assert pasted.sum() == 9
    # class 0 overlap of the source comes along on its 4 pixels
    assert (out[0][pasted] == 1).sum() == 4 and out[0][~pasted].sum() == 0
    # the target's class 2 is occluded under the object, kept elsewhere
    assert (out[2][pasted] == 0).all() and (out[2][~pasted] == 1).all()
    assert (out != 255).all()  # every pixel still valid
    assert (img[pasted] == 7).all() and (img[~pasted] == 0).all()
    with pytest.raises(ValueError, match='both be packed'):
        paste_objects(img, target, *source_map(), 3,
                      np.random.default_rng(0))


@pytest.mark.parametrize('kwargs,match', [
    (dict(prob=1.5), '`prob`'), (dict(flip_prob=-0.1), '`flip_prob`'),
    (dict(scale=(2, 1)), '`scale`'), (dict(max_objects=0), '`max_objects`'),
    (dict(temperature=0), '`temperature`')])
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(dict(type='RareClassCopyPaste', **kwargs))


def test_in_multi_image_mix_dataset(toy_data_root, tmp_path):
    inner = dict(
        type='SyntheticImbalanceDataset', data_root=toy_data_root,
        data_prefix=dict(img_path='img_dir/train',
                         seg_map_path='ann_dir/train'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations')])
    plain = DATASETS.build(inner)
    mixed = DATASETS.build(dict(
        type='MultiImageMixDataset', dataset=inner,
        pipeline=[dict(type='RareClassCopyPaste', prob=1.0, classes=['car'],
                       work_dir=str(tmp_path))]))
    np.random.seed(0)
    for i in range(4):
        out = mixed[i]
        assert out['copy_paste']['cls'] == 3
        assert out['copy_paste']['pixels'] > 0
        before = (plain[i]['gt_seg_map'] == 3).sum()
        assert (out['gt_seg_map'] == 3).sum() >= before
        assert 'mix_results' not in out
    transform = mixed.pipeline[0]
    assert transform.class_probs.tolist() == [0, 0, 0, 1]
    assert any(f.startswith('class_pixel_counts_')
               for f in os.listdir(tmp_path))
    # prob=0: no source is loaded, nothing pasted
    none = DATASETS.build(dict(
        type='MultiImageMixDataset', dataset=inner,
        pipeline=[dict(type='RareClassCopyPaste', prob=0.0,
                       work_dir=str(tmp_path))]))
    assert none.pipeline[0].get_indices(none.dataset) == []
    assert 'copy_paste' not in none[0]
