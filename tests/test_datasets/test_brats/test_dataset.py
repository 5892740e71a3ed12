# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTSDataset and LoadBraTSSlice on a converted generated root: data
infos (contract), 2.5D stacking at the volume edges, modality subsets,
tumour-ratio sampling, the pipeline on 4+ channel float images, the pixel
counter and the errors that say to run the converter."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, TASK_UTILS, TRANSFORMS

from mmseg_ext.datasets.brats import BraTSDataset, convert_brats
from mmseg_ext.datasets.brats.dataset import sample_tumour_slices
from mmseg_ext.datasets.generators.brats import generate_brats
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.multilabel import unpack_multilabel

META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'num_classes', 'case_id', 'slice_index',
             'case_slices', 'brats_case')
SIZE = (16, 12, 10)  # X != Y: H and W cannot be swapped unnoticed


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    """4 labelled cases + 1 unlabelled, converted with 2 folds."""
    root = str(tmp_path_factory.mktemp('brats_ds'))
    generate_brats(root, 4, SIZE, 'brats2020', seed=5)
    generate_brats(root, 1, SIZE, 'brats2020', seed=5, split='validation')
    convert_brats(root, num_folds=2, show_progress=False)
    init_default_scope('mmseg')
    return root


def _build(root, **kwargs):
    kwargs.setdefault('pipeline', [])
    return DATASETS.build(dict(type='BraTSDataset', data_root=root,
                               **kwargs))


def _split(root, name):
    with open(osp.join(root, 'brats_slices', 'splits', name + '.txt')) as f:
        return f.read().split()


def test_val_lists_every_brain_slice_in_order(root):
    ds = _build(root, split='val', fold=1)
    index = _split(root, 'fold1_val')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    expect = []
    for case_id in sorted(index):
        info = next(i for i in infos if i['case_id'] == case_id)
        z0, z1 = info['brats_case']['slice_range']
        expect += [(case_id, z) for z in range(z0, z1)]
        assert info['case_slices'] == z1 - z0
    assert [(i['case_id'], i['slice_index']) for i in infos] == expect
    info = infos[0]
    case = info['brats_case']
    assert info['img_path'] == case['image']
    assert info['seg_map_path'] == case['label']
    assert info['num_classes'] == 3 and 'stamps' not in case
    assert case['shape'] == list(SIZE) and case['labelled']
    assert ds.metainfo['classes'] == ('WT', 'TC', 'ET')
    assert len(ds.metainfo['palette']) == 3
    train = _build(root, split='train', fold=1)
    assert not {i['case_id'] for i in infos} & {
        train.get_data_info(i)['case_id'] for i in range(len(train))}


def test_test_split_has_no_labels(root):
    ds = _build(root, split='test',
                pipeline=[dict(type='LoadBraTSSlice')])
    info = ds.get_data_info(0)
    assert info['case_id'] == 'BraTS20_Validation_001'
    assert 'seg_map_path' not in info and not info['brats_case']['labelled']
    out = ds[0]
    assert out['img'].shape == (16, 12, 4) and 'gt_seg_map' not in out


def test_load_slice_equals_the_cache(root):
    ds = _build(root, split='all', pipeline=[dict(type='LoadBraTSSlice')])
    info = ds.get_data_info(3)
    out = ds[3]
    image = np.load(info['img_path'])
    z = info['slice_index']
    assert out['img'].dtype == np.float32 and out['img'].shape == (16, 12, 4)
    np.testing.assert_array_equal(out['img'], image[z].astype(np.float32))
    label = np.load(info['seg_map_path'])
    assert out['gt_seg_map'].shape == (16, 12, 1)
    np.testing.assert_array_equal(out['gt_seg_map'], label[z])
    assert out['img_shape'] == out['ori_shape'] == (16, 12)
    assert out['seg_fields'] == ['gt_seg_map']


@pytest.mark.parametrize('k', [1, 2])
def test_context_slices_stack_and_clamp_at_edges(root, k):
    ds = _build(root, split='all', skip_empty=False, context_slices=k,
                pipeline=[dict(type='LoadBraTSSlice')])
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    image = np.load(infos[0]['img_path']).astype(np.float32)
    depth = image.shape[0]
    for z in (0, 1, depth - 1):  # both edges and one inside
        i = next(j for j, info in enumerate(infos)
                 if info['case_id'] == infos[0]['case_id']
                 and info['slice_index'] == z)
        img = ds[i]['img']
        assert img.shape == (16, 12, 4 * (2 * k + 1))
        for j, dz in enumerate(range(-k, k + 1)):
            src = min(max(z + dz, 0), depth - 1)
            # slice-major: channel j * 4 + m is modality m of slice z-k+j
            np.testing.assert_array_equal(img[..., j * 4:(j + 1) * 4],
                                          image[src])
        label = np.load(infos[i]['seg_map_path'])
        np.testing.assert_array_equal(ds[i]['gt_seg_map'], label[z])


def test_modality_subset_and_transform_context_check(root):
    ds = _build(root, split='all', modalities=['t1ce', 'FLAIR'],
                context_slices=1, pipeline=[dict(type='LoadBraTSSlice')])
    info = ds.get_data_info(5)
    z = info['slice_index']
    image = np.load(info['img_path']).astype(np.float32)
    img = ds[5]['img']
    assert img.shape == (16, 12, 6)
    np.testing.assert_array_equal(img[..., 2:4], image[z][..., [2, 0]])
    with pytest.raises(ValueError, match="cached modalities .*'T3'"):
        _build(root, split='all', modalities=['T3'])
    with pytest.raises(ValueError, match='should match the dataset'):
        TRANSFORMS.build(dict(type='LoadBraTSSlice', context_slices=2))(
            dict(info))
    with pytest.raises(ValueError, match='int >= 0'):
        TRANSFORMS.build(dict(type='LoadBraTSSlice', context_slices=-1))


def test_sample_tumour_slices_rule():
    rng = np.random.default_rng(0)
    cand = list(range(10))
    tumour = [2, 3, 4, 5]  # T = 4, N = 6
    assert sample_tumour_slices(cand, tumour, None, rng) == cand
    assert sample_tumour_slices(cand, tumour, 1.0, rng) == cand
    assert sample_tumour_slices(cand, tumour, 0.0, rng) == tumour
    for r, n in ((0.5, 4), (1 / 3, 2), (0.2, 1), (0.9, 6)):
        kept = sample_tumour_slices(cand, tumour, r, rng)
        assert set(tumour) <= set(kept) and len(kept) == 4 + n, r
        assert (len(kept) - 4) / len(kept) <= r + 1e-12
    assert sample_tumour_slices(cand, [], 0.5, rng) == []


def test_tumour_ratio_in_the_dataset_is_deterministic(root):
    full = _build(root, split='all')
    ds = _build(root, split='all', tumour_ratio=0.25)
    again = _build(root, split='all', tumour_ratio=0.25)
    other = _build(root, split='all', tumour_ratio=0.25, seed=1)

    def listing(d):
        return [(d.get_data_info(i)['case_id'],
                 d.get_data_info(i)['slice_index']) for i in range(len(d))]

    assert listing(ds) == listing(again)
    assert len(listing(other)) == len(listing(ds))
    by_case = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        by_case.setdefault(info['case_id'], []).append(info)
    for case_id, infos in by_case.items():
        case = infos[0]['brats_case']
        z0, z1 = case['slice_range']
        tumour = [z for z in case['tumour_slices'] if z0 <= z < z1]
        zs = [i['slice_index'] for i in infos]
        assert set(tumour) <= set(zs)
        neg = len(zs) - len(tumour)
        assert neg == min(z1 - z0 - len(tumour), int(len(tumour) / 3))
        assert all(i['case_slices'] == len(zs) for i in infos)
    assert len(ds) < len(full)
    with pytest.raises(ValueError, match='should be None for split'):
        _build(root, split='val', fold=0, tumour_ratio=0.5)
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
        _build(root, split='train', tumour_ratio=1.5)


def test_skip_empty(root):
    ds = _build(root, split='all', skip_empty=False)
    case = ds.get_data_info(0)['brats_case']
    n = sum(ds.get_data_info(i)['case_id'] == case['case_id']
            for i in range(len(ds)))
    assert n == SIZE[2]
    assert case['slice_range'] != [0, SIZE[2]]  # the generator has margins


def test_pipeline_on_float_multichannel_images(root):
    """Flip, rotate and pack on (H, W, 12) float32; no bgr_to_rgb."""
    pipeline = [
        dict(type='LoadBraTSSlice'),
        dict(type='RandomFlip', prob=1.0, direction='vertical'),
        dict(type='RandomRotate', prob=1.0, degree=(90, 90), pad_val=0,
             seg_pad_val=0),
        dict(type='PackMultiLabelSegInputs', meta_keys=META_KEYS),
    ]
    ds = _build(root, split='all', context_slices=1, pipeline=pipeline)
    raw = _build(root, split='all', context_slices=1,
                 pipeline=[dict(type='LoadBraTSSlice')])
    i = len(ds) // 2
    out, ref = ds[i], raw[i]
    assert out['inputs'].dtype == torch.float32
    assert out['inputs'].shape == (12, 16, 12)
    sample = out['data_samples']
    assert sample.metainfo['case_id'] == ref['case_id']
    assert sample.metainfo['slice_index'] == ref['slice_index']
    assert sample.metainfo['case_slices'] == ref['case_slices']
    assert sample.metainfo['brats_case']['case_id'] == ref['case_id']
    gt = sample.gt_sem_seg.data
    assert gt.dtype == torch.int16 and gt.shape == (1, 16, 12)
    # the image's and the label's pixels moved together: the image at the
    # pixels inside the rotated frame matches a flipped + rotated copy
    flipped = ref['img'][::-1]
    label = ref['gt_seg_map'][::-1, :, 0]
    valid = (gt[0].numpy().view(np.uint16) >> 15) == 1
    assert valid.sum() > 0
    ys, xs = np.nonzero(valid)
    img = out['inputs'].numpy().transpose(1, 2, 0)
    packed = gt[0].numpy().view(np.uint16)
    # both moved by the same affine map: same value pairs (image, label)
    pairs = {(tuple(np.round(img[y, x, :4], 3)), int(packed[y, x]))
             for y, x in zip(ys, xs)}
    src = {(tuple(np.round(flipped[y, x, :4], 3)), int(label[y, x]))
           for y in range(16) for x in range(12)}
    assert pairs <= src
    # the data preprocessor of the configs: mean 0 / std 1, no bgr_to_rgb
    from mmseg_ext.models.data_preprocessors import \
        MultiLabelSegDataPreProcessor
    pre = MultiLabelSegDataPreProcessor(
        num_classes=3, mean=[0.0] * 12, std=[1.0] * 12, bgr_to_rgb=False,
        pad_val=0, seg_pad_val=0, size=(16, 16))
    batch = pre(dict(inputs=[out['inputs']], data_samples=[sample]), True)
    assert batch['inputs'].shape == (1, 12, 16, 16)
    torch.testing.assert_close(batch['inputs'][0, :, :, :12], out['inputs'])
    target = batch['data_samples'][0].gt_sem_seg.data
    assert target.shape == (3, 16, 16) and target.dtype == torch.uint8
    np.testing.assert_array_equal(
        target[:, :, :12].numpy(),
        unpack_multilabel(packed[..., None], 3))


def test_pixel_counter_counts_the_listed_slices(root):
    ds = _build(root, split='train', fold=0, tumour_ratio=0.0)
    counter = TASK_UTILS.build(ds.get_pixel_counter())
    counter.setup(ds)
    items = counter.items(ds)
    assert len(items) == len({ds.get_data_info(i)['case_id']
                              for i in range(len(ds))})
    total = sum(counter.count(item) for item in items)
    expect = np.zeros(3, np.int64)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        label = np.load(info['seg_map_path'])[info['slice_index']]
        expect += unpack_multilabel(label, 3).reshape(3, -1).sum(
            1, dtype=np.int64)
    assert total.tolist() == expect.tolist() and total[0] > 0
    assert counter.fingerprint(items) == counter.fingerprint(
        counter.items(ds))
    # what ClassWeightHook runs: the dataset names its counter
    from mmseg_ext.datasets.pixel_counters import count_dataset_pixels
    counts, info = count_dataset_pixels(ds, num_workers=1,
                                        show_progress=False)
    assert counts.tolist() == expect.tolist()
    assert info['num_items'] == len(items)
    with pytest.raises(ValueError, match='labelled BraTSDataset'):
        counter.items(_build(root, split='test'))


def test_missing_cache_says_run_the_converter(root, tmp_path):
    with pytest.raises(FileNotFoundError,
                       match='tools/dataset_converters/brats.py'):
        _build(str(tmp_path), split='val')
    with pytest.raises(FileNotFoundError, match='fold7_val.txt'):
        _build(root, split='val', fold=7)
    small = str(tmp_path / 'small')
    generate_brats(small, 2, (8, 8, 8), 'brats2020', seed=6)
    convert_brats(small, num_folds=2, show_progress=False)
    missing = osp.join(small, 'brats_slices', 'cases',
                       'BraTS20_Training_002', 'image.npy')
    os.remove(missing)
    with pytest.raises(FileNotFoundError,
                       match=f'{missing} .*tools/dataset_converters'):
        _build(small, split='all')
    with pytest.raises(ValueError, match='`split` should be one of'):
        _build(root, split='training')
    with pytest.raises(ValueError, match='`fold` should be an int'):
        _build(root, split='train', fold=None)
    with pytest.raises(TypeError, match='sets `ann_file`'):
        _build(root, split='all', ann_file='x.txt')


def test_stale_cache_file_is_an_input_error(root, tmp_path):
    info = _build(root, split='all').get_data_info(0)
    bad = str(tmp_path / 'image.npy')
    np.save(bad, np.zeros((3, 4, 4), np.float32))
    with pytest.raises(InputError, match='re-run the converter'):
        TRANSFORMS.build(dict(type='LoadBraTSSlice'))(
            dict(info, img_path=bad))
    assert isinstance(BraTSDataset.METAINFO['classes'], tuple)
