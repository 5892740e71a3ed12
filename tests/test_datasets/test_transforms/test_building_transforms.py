# Copyright (c) mmseg_ext contributors. All rights reserved.
import numpy as np
import pytest
from mmseg.registry import TRANSFORMS

from mmseg_ext.datasets.building_rle import CSVRowError
from mmseg_ext.datasets.transforms import AlbuSeg, LoadRLEAnnotations
from mmseg_ext.utils.rle import rle_encode


def _results(h=64, w=48):
    rng = np.random.default_rng(0)
    gt = np.zeros((h, w), np.uint8)
    gt[10:20, 5:30] = 1
    return dict(
        img=rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
        gt_seg_map=gt,
        img_shape=(h, w),
        ori_shape=(h, w),
        seg_fields=['gt_seg_map'],
        img_path='tile.png',
        reduce_zero_label=False)


CROP = [dict(type='RandomCrop', height=32, width=24, p=1.0)]


def test_mmseg_albu_leaves_img_shape_stale():
    """The bug AlbuSeg fixes: mmseg's Albu crops but keeps the old shape."""
    albu = TRANSFORMS.build(dict(type='Albu', transforms=CROP))
    out = albu(_results())
    assert out['img'].shape[:2] == (32, 24)
    assert out['gt_seg_map'].shape == (32, 24)
    assert out['img_shape'] == (64, 48)  # stale


def test_albuseg_updates_img_shape():
    albu = TRANSFORMS.build(dict(type='AlbuSeg', transforms=CROP))
    assert isinstance(albu, AlbuSeg)
    out = albu(_results())
    assert out['img'].shape[:2] == (32, 24)
    assert out['gt_seg_map'].shape == (32, 24)
    assert out['img_shape'] == (32, 24)
    assert out['ori_shape'] == (64, 48)  # the file's size, by default
    assert 'pad_shape' not in out


def test_albuseg_updates_pad_and_ori_shape_and_drops_scale_factor():
    albu = TRANSFORMS.build(
        dict(type='AlbuSeg', update_ori_shape=True,
             transforms=[dict(type='Resize', height=16, width=20, p=1.0)]))
    results = _results()
    results['pad_shape'] = (64, 48)
    results['scale_factor'] = (1.0, 1.0)
    out = albu(results)
    assert out['img_shape'] == out['pad_shape'] == out['ori_shape'] == (16,
                                                                       20)
    assert 'scale_factor' not in out


def test_albuseg_crop_non_empty_and_resized_crop_pipeline():
    transforms = [
        dict(type='CropNonEmptyMaskIfExists', height=24, width=24, p=1.0),
        dict(type='RandomResizedCrop', size=(16, 16), scale=(0.5, 1.0)),
        dict(type='HorizontalFlip', p=0.5),
        dict(type='RandomRotate90', p=0.5),
        dict(type='ColorJitter', p=1.0),
        dict(type='ToGray', p=1.0),
    ]
    albu = TRANSFORMS.build(dict(type='AlbuSeg', transforms=transforms))
    # CropNonEmptyMaskIfExists alone always keeps building pixels (the
    # RandomResizedCrop after it may crop them away, so it is checked on
    # its own).
    crop = TRANSFORMS.build(
        dict(type='AlbuSeg', transforms=transforms[:1]))
    for seed in range(5):
        # albumentations 2 draws from its own generators, not np.random.
        albu.aug.set_random_seed(seed)
        out = albu(_results())
        assert out['img'].shape == (16, 16, 3)
        assert out['img_shape'] == (16, 16)
        assert set(np.unique(out['gt_seg_map'])) <= {0, 1}
        crop.aug.set_random_seed(seed)
        out = crop(_results())
        assert out['img_shape'] == (24, 24)
        assert out['gt_seg_map'].any()
    assert 'AlbuSeg(transforms=' in repr(albu)


def test_albuseg_moves_extra_seg_fields_and_keeps_bgr():
    albu = TRANSFORMS.build(dict(type='AlbuSeg', transforms=[
        dict(type='HorizontalFlip', p=1.0)]))
    results = _results()
    results['img'] = np.zeros((64, 48, 3), np.uint8)
    results['img'][..., 0] = 200  # blue in BGR
    results['gt_extra'] = results['gt_seg_map'] * 3
    results['seg_fields'] = ['gt_seg_map', 'gt_extra']
    out = albu(results)
    np.testing.assert_array_equal(out['gt_seg_map'],
                                  _results()['gt_seg_map'][:, ::-1])
    np.testing.assert_array_equal(out['gt_extra'], out['gt_seg_map'] * 3)
    assert out['img'][0, 0].tolist() == [200, 0, 0]


def _rle_results(mask, **extra):
    results = dict(
        img=np.zeros(mask.shape + (3, ), np.uint8),
        ori_shape=mask.shape,
        img_shape=mask.shape,
        mask_rle=rle_encode(mask),
        csv_path='data/train.csv',
        csv_line=7,
        img_id='TRAIN_0005')
    results.update(extra)
    return results


def test_load_rle_annotations_decodes():
    mask = np.zeros((20, 30), np.uint8)
    mask[3:9, 4:25] = 1
    load = TRANSFORMS.build(dict(type='LoadRLEAnnotations'))
    assert isinstance(load, LoadRLEAnnotations)
    out = load(_rle_results(mask))
    np.testing.assert_array_equal(out['gt_seg_map'], mask)
    assert out['gt_seg_map'].dtype == np.uint8
    assert out['seg_fields'] == ['gt_seg_map']
    assert repr(load) == "LoadRLEAnnotations(rle_key='mask_rle')"


@pytest.mark.parametrize('empty', ['', '-1', ' -1 '])
def test_load_rle_annotations_empty(empty):
    out = LoadRLEAnnotations()(
        _rle_results(np.zeros((4, 5), np.uint8), mask_rle=empty))
    assert out['gt_seg_map'].shape == (4, 5) and not out['gt_seg_map'].any()


def test_load_rle_annotations_uses_ori_shape_after_resize():
    mask = np.zeros((20, 30), np.uint8)
    mask[-1, -1] = 1
    results = _rle_results(mask)
    results['img'] = np.zeros((10, 15, 3), np.uint8)  # resized image
    results['img_shape'] = (10, 15)
    out = LoadRLEAnnotations()(results)
    assert out['gt_seg_map'].shape == (20, 30)


def test_load_rle_annotations_errors_name_the_csv_line():
    mask = np.ones((4, 5), np.uint8)
    with pytest.raises(CSVRowError,
                       match=r"data/train\.csv: line 7 \(TRAIN_0005\), "
                       r"field 'mask_rle' \(for the 3x5 image\): .*beyond"):
        LoadRLEAnnotations()(_rle_results(mask, ori_shape=(3, 5)))
    with pytest.raises(CSVRowError, match=r'line 7 .*no `mask_rle`'):
        LoadRLEAnnotations()(_rle_results(mask, mask_rle=None))
    with pytest.raises(CSVRowError, match=r'line 7 .*image is 4x5, but the '
                       'dataset says every image is 8x8'):
        LoadRLEAnnotations()(_rle_results(mask, height=8, width=8))


@pytest.mark.parametrize('rle_key', ['', None, 3])
def test_load_rle_annotations_bad_rle_key(rle_key):
    with pytest.raises(TypeError, match='rle_key'):
        TRANSFORMS.build(dict(type='LoadRLEAnnotations', rle_key=rle_key))


@pytest.mark.parametrize('cfg,exc,match', [
    (dict(transforms=dict(type='HorizontalFlip')), TypeError, 'transforms'),
    (dict(transforms=[dict(p=0.5)]), TypeError, 'transforms'),
    (dict(transforms=['HorizontalFlip']), TypeError, 'transforms'),
    (dict(transforms=[], keymap=[('img', 'image')]), TypeError, 'keymap'),
    (dict(transforms=[], keymap=dict(gt_seg_map='mask')), ValueError,
     "map 'img'"),
    (dict(transforms=[], update_ori_shape='yes'), TypeError,
     'update_ori_shape'),
    (dict(transforms=[], update_pad_shape=1), TypeError, 'update_pad_shape'),
])
def test_albuseg_bad_args(cfg, exc, match):
    with pytest.raises(exc, match=match):
        TRANSFORMS.build(dict(type='AlbuSeg', **cfg))
