# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Packed labels through MMSeg's transforms equal per-class transforms."""
import random

import cv2
import numpy as np
import pytest
import torch
from mmseg.registry import TRANSFORMS

from mmseg_ext.datasets.transforms import (LoadMultiLabelAnnotations,
                                           MultiLabelRandomCrop,
                                           PackMultiLabelSegInputs,
                                           pipeline_packed_map)
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.multilabel import (num_packed_channels, pack_multilabel,
                                        unpack_multilabel, write_packed_label)

H, W = 48, 64


def make_masks(num_classes, seed=0, h=H, w=W):
    """Overlapping ellipses, one per class, and an ignored corner."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((num_classes, h, w), np.uint8)
    for k in range(num_classes):
        center = (int(rng.integers(8, w - 8)), int(rng.integers(8, h - 8)))
        axes = (int(rng.integers(4, 16)), int(rng.integers(4, 12)))
        cv2.ellipse(masks[k], center, axes, float(rng.integers(0, 180)), 0,
                    360, 1, -1)
    ignore = np.zeros((h, w), bool)
    ignore[:5, :7] = True
    return masks.astype(bool), ignore


def make_results(gt, seed=0):
    rng = np.random.default_rng(seed + 100)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return dict(
        img=img,
        gt_seg_map=gt,
        seg_fields=['gt_seg_map'],
        img_shape=(H, W),
        ori_shape=(H, W))


def unpack(packed, num_classes):
    """Unpack a pipeline map (drops the zero channel of K = 2)."""
    if packed.ndim == 3:
        packed = packed[..., :num_packed_channels(num_classes)]
    return unpack_multilabel(packed, num_classes)


def run(transform, gt, seed):
    """Apply ``transform`` with every RNG seeded by ``seed``."""
    np.random.seed(seed)
    random.seed(seed)
    if hasattr(transform, 'aug'):  # mmseg's Albu
        transform.aug.set_random_seed(seed)
    out = transform(make_results(gt.copy()))
    return out['gt_seg_map']


def per_class_reference(transform, masks, ignore, seed):
    """Transform every class mask (uint8, 255 ignored) on its own; pixels
    the transform filled (padding) are ignored."""
    valid = run(transform, np.ones((H, W), np.uint8), seed) == 1
    ref = []
    for mask in masks:
        single = np.where(ignore, 255, mask.astype(np.uint8)).astype(np.uint8)
        out = run(transform, single, seed)
        ref.append(np.where(valid, out, 255))
    return np.stack(ref).astype(np.uint8)


TRANSFORM_CFGS = [
    dict(type='RandomFlip', prob=1.0, direction='horizontal'),
    dict(type='RandomFlip', prob=0.9, direction=['horizontal', 'vertical']),
    dict(type='RandomCrop', crop_size=(32, 40)),
    dict(type='MultiLabelRandomCrop', crop_size=(32, 40)),
    dict(type='Resize', scale=(50, 37), keep_ratio=False),
    dict(type='RandomResize',
         scale=(64, 48),
         ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomRotate', prob=1.0, degree=30),
    dict(type='RandomRotate', prob=1.0, degree=(-45, 45), seg_pad_val=0),
    dict(type='Pad', size=(80, 56)),
    dict(type='Albu', transforms=[dict(type='HorizontalFlip', p=1.0)]),
    dict(type='Albu', transforms=[dict(type='ElasticTransform', p=1.0)]),
    dict(type='Albu', transforms=[dict(type='GridDistortion', p=1.0)]),
    dict(type='Albu', transforms=[dict(type='Affine', rotate=(-20, 20),
                                       scale=(0.8, 1.2), p=1.0)]),
]


@pytest.mark.parametrize('num_classes', [3, 29])
@pytest.mark.parametrize(
    'cfg', TRANSFORM_CFGS,
    ids=[
        c['type'] + ('-' + c['transforms'][0]['type'] if 'transforms' in c
                     else '') + f'-{i}' for i, c in enumerate(TRANSFORM_CFGS)
    ])
def test_packed_equals_per_class(cfg, num_classes):
    transform = TRANSFORMS.build(cfg)
    masks, ignore = make_masks(num_classes, seed=num_classes)
    packed = pipeline_packed_map(pack_multilabel(masks, ignore))
    for seed in (0, 1):
        out = run(transform, packed, seed)
        assert out.dtype == np.uint16
        got = unpack(out, num_classes)
        expected = per_class_reference(transform, masks, ignore, seed)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize('seg_pad_val', [0, 255])
def test_rotate_border_is_ignored(seg_pad_val):
    masks = np.ones((29, H, W), bool)
    rotate = TRANSFORMS.build(
        dict(type='RandomRotate', prob=1.0, degree=(45, 45),
             seg_pad_val=seg_pad_val))
    out = run(rotate, pipeline_packed_map(pack_multilabel(masks)), 0)
    out = unpack(out, 29)
    # The corners come from outside the image: ignored in every class, not
    # random class bits; the centre is still labelled.
    assert (out[:, 0, 0] == 255).all() and (out[:, -1, -1] == 255).all()
    assert (out[:, H // 2, W // 2] == 1).all()
    assert set(np.unique(out)) == {1, 255}


def test_load_multilabel_annotations(tmp_path):
    masks, ignore = make_masks(29)
    packed = pack_multilabel(masks, ignore)
    path = str(tmp_path / 'a.png')
    write_packed_label(path, packed)
    load = TRANSFORMS.build(dict(type='LoadMultiLabelAnnotations'))
    results = load(dict(seg_map_path=path, num_classes=29, seg_fields=[]))
    # K = 2 travels with a zero third channel.
    assert results['gt_seg_map'].shape == (H, W, 3)
    np.testing.assert_array_equal(results['gt_seg_map'][..., :2], packed)
    assert not results['gt_seg_map'][..., 2].any()
    assert results['gt_seg_map'].dtype == np.uint16
    assert results['seg_fields'] == ['gt_seg_map']
    assert results['num_classes'] == 29
    # num_classes from the transform argument.
    results = LoadMultiLabelAnnotations(num_classes=29)(
        dict(seg_map_path=path, seg_fields=[]))
    assert results['gt_seg_map'].shape == (H, W, 3)
    assert 'LoadMultiLabelAnnotations(num_classes=29)' == repr(
        LoadMultiLabelAnnotations(29))


def test_load_multilabel_annotations_errors(tmp_path):
    path = str(tmp_path / 'b.png')
    write_packed_label(path, pack_multilabel(np.zeros((3, 4, 4), bool)))
    load = LoadMultiLabelAnnotations()
    with pytest.raises(ValueError, match='b.png'):
        load(dict(seg_map_path=path, seg_fields=[]))
    with pytest.raises(ValueError, match='should match'):
        LoadMultiLabelAnnotations(4)(
            dict(seg_map_path=path, num_classes=3, seg_fields=[]))
    with pytest.raises(ValueError, match='b.png'):
        load(dict(seg_map_path=path, num_classes=29, seg_fields=[]))
    with pytest.raises(FileNotFoundError, match='missing.png'):
        load(
            dict(
                seg_map_path=str(tmp_path / 'missing.png'),
                num_classes=3,
                seg_fields=[]))
    with pytest.raises(ValueError, match='label_map'):
        load(
            dict(
                seg_map_path=path,
                num_classes=3,
                label_map={0: 1},
                seg_fields=[]))
    with pytest.raises(ValueError, match='reduce_zero_label'):
        load(
            dict(
                seg_map_path=path,
                num_classes=3,
                reduce_zero_label=True,
                seg_fields=[]))
    with pytest.raises(ValueError, match='num_classes'):
        LoadMultiLabelAnnotations(0)


def test_pack_label_regions():
    label = np.array([[0, 1, 255], [1, 0, 1]], dtype=np.uint8)
    pack = TRANSFORMS.build(dict(type='PackLabelRegions', regions=[[1]]))
    results = pack(dict(gt_seg_map=label))
    assert results['num_classes'] == 1
    assert results['gt_seg_map'].shape == (2, 3, 1)
    np.testing.assert_array_equal(
        unpack_multilabel(results['gt_seg_map'], 1),
        [[[0, 1, 255], [1, 0, 1]]])
    brats = TRANSFORMS.build(
        dict(type='PackLabelRegions', regions=[[1, 2, 4], [1, 4], [4]]))
    out = brats(dict(gt_seg_map=np.array([[0, 1, 2, 4]], np.uint8)))
    np.testing.assert_array_equal(
        unpack_multilabel(out['gt_seg_map'], 3),
        [[[0, 1, 1, 1]], [[0, 1, 0, 1]], [[0, 0, 0, 1]]])
    assert 'regions=[[1]]' in repr(pack)
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        pack(dict(gt_seg_map=np.zeros((2, 2, 1), np.uint16)))
    with pytest.raises(ValueError, match='regions'):
        TRANSFORMS.build(dict(type='PackLabelRegions', regions=[]))
    with pytest.raises(ValueError, match='regions'):
        TRANSFORMS.build(dict(type='PackLabelRegions', regions=[1, 2]))


@pytest.mark.parametrize('num_classes', [1, 29])
def test_pack_multilabel_seg_inputs(num_classes):
    masks, ignore = make_masks(num_classes)
    packed = pack_multilabel(masks, ignore)
    pack = TRANSFORMS.build(dict(type='PackMultiLabelSegInputs'))
    results = make_results(packed)
    results['num_classes'] = num_classes
    out = pack(results)
    gt = out['data_samples'].gt_sem_seg.data
    k = num_packed_channels(num_classes)
    assert gt.dtype == torch.int16 and gt.shape == (k, H, W)
    assert gt.is_contiguous()
    # Same bits: reinterpreting back as uint16 gives the packed map.
    np.testing.assert_array_equal(
        gt.numpy().view(np.uint16).transpose(1, 2, 0), packed)
    assert out['data_samples'].metainfo['num_classes'] == num_classes
    assert out['inputs'].shape == (3, H, W)


def test_pack_multilabel_seg_inputs_strided_and_2d():
    masks, ignore = make_masks(3)
    packed = pack_multilabel(masks, ignore)  # (H, W, 1)
    pack = PackMultiLabelSegInputs(num_classes=3)
    # OpenCV transforms drop the channel axis of K = 1 maps; a flip leaves
    # negative strides.
    for gt in (packed[..., 0], packed[:, ::-1]):
        out = pack(make_results(gt))
        data = out['data_samples'].gt_sem_seg.data
        assert data.shape == (1, H, W)
        np.testing.assert_array_equal(data.numpy().view(np.uint16)[0],
                                      np.asarray(gt).reshape(H, W))
    assert out['data_samples'].metainfo['num_classes'] == 3


def test_pack_multilabel_seg_inputs_errors():
    pack = PackMultiLabelSegInputs()
    with pytest.raises(ValueError, match='uint16'):
        pack(make_results(np.zeros((H, W), np.uint8)))
    with pytest.raises(ValueError, match='K=2'):
        PackMultiLabelSegInputs(num_classes=29)(
            make_results(np.zeros((H, W, 1), np.uint16)))


def test_combination_counts():
    masks = np.zeros((17, 2, 3), bool)
    masks[0, 0, :2] = True  # two pixels with class 0 only
    masks[16, 1, :] = True  # three pixels with class 16
    masks[0, 1, 0] = True  # one of them also class 0
    ignore = np.zeros((2, 3), bool)
    ignore[0, 2] = True  # left out
    counts = MultiLabelRandomCrop.combination_counts(
        pack_multilabel(masks, ignore))
    assert sorted(counts.tolist()) == [1, 2, 2]


def test_multilabel_random_crop_cat_max_ratio():
    # Left half: class 0; right half: class 1; a 16-wide crop within one
    # half has a single combination and is retried.
    masks = np.zeros((2, H, W), bool)
    masks[0, :, :W // 2] = True
    masks[1, :, W // 2:] = True
    packed = pack_multilabel(masks)
    crop = MultiLabelRandomCrop(crop_size=(16, 16), cat_max_ratio=0.95)
    for seed in range(5):
        np.random.seed(seed)
        out = crop(make_results(packed.copy()))
        counts = MultiLabelRandomCrop.combination_counts(out['gt_seg_map'])
        assert len(counts) == 2, seed
    assert 'cat_max_ratio=0.95' in repr(crop)


def test_multilabel_random_crop_moves_all_classes():
    masks, ignore = make_masks(29)
    packed = pack_multilabel(masks, ignore)
    crop = MultiLabelRandomCrop(crop_size=(32, 40), cat_max_ratio=0.5)
    np.random.seed(0)
    results = make_results(packed.copy())
    img = results['img'].copy()
    out = crop(results)
    # Find the crop box from the image, then compare every class.
    boxes = [(y, x) for y in range(H - 31) for x in range(W - 39)
             if np.array_equal(img[y:y + 32, x:x + 40], out['img'])]
    assert len(boxes) == 1
    y, x = boxes[0]
    np.testing.assert_array_equal(
        unpack_multilabel(out['gt_seg_map'], 29),
        unpack_multilabel(packed, 29)[:, y:y + 32, x:x + 40])
    with pytest.raises(ValueError, match='uint16'):
        MultiLabelRandomCrop.combination_counts(np.zeros((2, 2), np.uint8))


def test_load_multilabel_annotations_checks_the_image_size(tmp_path):
    path = str(tmp_path / 'c.png')
    write_packed_label(path, pack_multilabel(np.zeros((3, 4, 5), bool)))
    load = LoadMultiLabelAnnotations(3)
    # same size as the image (ori_shape from LoadImageFromFile, or img)
    load(dict(seg_map_path=path, ori_shape=(4, 5), img_path='x.png'))
    load(dict(seg_map_path=path, img=np.zeros((4, 5, 3), np.uint8)))
    with pytest.raises(InputError) as err:
        load(dict(seg_map_path=path, ori_shape=(4, 6), img_path='img/x.png',
                  seg_fields=[]))
    assert str(err.value).startswith(f'{path}: the packed label is 4x5')
    assert 'its image img/x.png is 4x6' in str(err.value)
    assert err.value.path == path


@pytest.mark.parametrize('num_classes', [1, 3, 16, 29])
def test_load_multilabel_annotations_rejects_bits_beyond_c(
        tmp_path, num_classes):
    masks, ignore = make_masks(num_classes)
    packed = pack_multilabel(masks, ignore)
    path = str(tmp_path / 'd.png')
    write_packed_label(path, packed)
    LoadMultiLabelAnnotations(num_classes)(dict(seg_map_path=path))
    k = num_packed_channels(num_classes)
    bit = num_classes % 16  # the first bit past the last class
    packed[3, 2, k - 1] |= np.uint16(1 << bit)
    write_packed_label(path, packed)
    with pytest.raises(InputError,
                       match=rf'pixel \(y=3, x=2\) sets channel {k - 1} '
                       rf'bit\(s\) \[{bit}\] \(class index\(es\) '
                       rf'\[{num_classes}\]\), beyond the C={num_classes}'):
        LoadMultiLabelAnnotations(num_classes)(dict(seg_map_path=path))


@pytest.mark.parametrize('cfg,exc,match', [
    (dict(regions=[[1, 2.5]]), TypeError, 'int label values'),
    (dict(regions=[[1, True]]), TypeError, 'int label values'),
    (dict(regions=[[1]], ignore_index='255'), TypeError, 'ignore_index'),
    (dict(regions=[[1, 255]]), ValueError, 'should not contain'),
    (dict(regions=[[0, 1]], ignore_index=0), ValueError, 'should not contain'),
])
def test_pack_label_regions_bad_args(cfg, exc, match):
    with pytest.raises(exc, match=match):
        TRANSFORMS.build(dict(type='PackLabelRegions', **cfg))


def test_pack_label_regions_without_ignore_index_builds():
    t = TRANSFORMS.build(
        dict(type='PackLabelRegions', regions=[[255]], ignore_index=None))
    assert t.regions == [[255]]


@pytest.mark.parametrize('cfg,match', [
    (dict(crop_size=0), 'crop_size'),
    (dict(crop_size=(4, -1)), 'crop_size'),
    (dict(crop_size=(4, 4, 4)), 'crop_size'),
    (dict(crop_size=(4.0, 4)), 'crop_size'),
    (dict(crop_size=True), 'crop_size'),
    (dict(crop_size=4, cat_max_ratio=0), 'cat_max_ratio'),
    (dict(crop_size=4, cat_max_ratio=1.5), 'cat_max_ratio'),
    (dict(crop_size=4, cat_max_ratio=float('nan')), 'cat_max_ratio'),
])
def test_multilabel_random_crop_bad_args(cfg, match):
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(dict(type='MultiLabelRandomCrop', **cfg))


def test_multilabel_random_crop_int_size_builds():
    t = TRANSFORMS.build(
        dict(type='MultiLabelRandomCrop', crop_size=4, cat_max_ratio=0.75))
    assert t.crop_size == (4, 4) and t.cat_max_ratio == 0.75
