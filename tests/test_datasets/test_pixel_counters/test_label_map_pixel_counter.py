# Copyright (c) mmseg_ext contributors. All rights reserved.
"""LabelMapPixelCounter and count_dataset_pixels: counts equal to mmseg's
loader, label formats, the cache, a dataset's own counter."""
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, TASK_UTILS
from PIL import Image

from mmseg_ext.datasets.pixel_counters import (LabelMapPixelCounter,
                                              PixelCounter,
                                              count_dataset_pixels,
                                              read_label_map)



def build_dataset(root, **kwargs):
    return DATASETS.build(
        dict(
            type='SyntheticImbalanceDataset',
            data_root=root,
            data_prefix=dict(
                img_path='img_dir/train', seg_map_path='ann_dir/train'),
            pipeline=[],
            **kwargs))


def naive_counts(dataset):
    """The reference: mmseg's LoadAnnotations, then np.bincount."""
    load = LoadAnnotations()
    num_classes = len(dataset.metainfo['classes'])
    counts = np.zeros(num_classes, np.int64)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        info['seg_fields'] = []
        seg = load(info)['gt_seg_map']
        counts += np.bincount(seg[seg < num_classes], minlength=num_classes)
    return counts


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(reduce_zero_label=True),
    dict(metainfo=dict(classes=('background', 'road'))),  # label_map
])
@pytest.mark.parametrize('num_workers', [0, 2])
def test_counts_match_mmseg_loader(toy_data_root, kwargs, num_workers):
    dataset = build_dataset(toy_data_root, **kwargs)
    counts, info = count_dataset_pixels(
        dataset, num_workers=num_workers, show_progress=False)
    assert counts.dtype == np.int64
    assert counts.tolist() == naive_counts(dataset).tolist()
    assert info['num_items'] == 8 and not info['cache_hit']


def test_counts_match_bincount_of_files(toy_data_root):
    dataset = build_dataset(toy_data_root)
    expected = np.zeros(4, np.int64)
    folder = osp.join(toy_data_root, 'ann_dir', 'train')
    for name in sorted(os.listdir(folder)):
        label = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
        expected += np.bincount(label.ravel(), minlength=4)
    counts, _ = count_dataset_pixels(dataset, show_progress=True)
    assert counts.tolist() == expected.tolist()
    # wrappers: each label file counted once
    concat = ConcatDataset([dataset, build_dataset(toy_data_root)])
    counts2, info = count_dataset_pixels(concat, num_workers=0)
    assert counts2.tolist() == (2 * expected).tolist()
    assert info['num_items'] == 16
    counts3, info = count_dataset_pixels(
        RepeatDataset(dataset, times=3), num_workers=0)
    assert counts3.tolist() == expected.tolist()


def test_read_label_map_formats_and_errors(tmp_path):
    label = np.array([[0, 1], [2, 255]], np.uint8)
    pal = Image.fromarray(label, mode='P')
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] * 85 + [1, 2, 3])
    pal.save(tmp_path / 'pal.png')  # cv2 would expand it to BGR
    assert read_label_map(str(tmp_path / 'pal.png')).tolist() == \
        label.tolist()
    cv2.imwrite(str(tmp_path / 'l16.png'), label.astype(np.uint16) + 256)
    assert read_label_map(str(tmp_path / 'l16.png')).tolist() == \
        label.tolist()  # uint8 cast, like mmseg's loader
    cv2.imwrite(str(tmp_path / 'rgb.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='rgb.png.*single-channel'):
        read_label_map(str(tmp_path / 'rgb.png'))
    (tmp_path / 'bad.png').write_bytes(b'not an image')
    with pytest.raises(ValueError, match='bad.png'):
        read_label_map(str(tmp_path / 'bad.png'))
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_label_map(str(tmp_path / 'missing.png'))


@pytest.fixture
def data_copy(toy_data_root, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(toy_data_root, root)
    return str(root)


def test_fingerprint_changes_and_cache(data_copy, tmp_path):
    dataset = build_dataset(data_copy)
    cache = str(tmp_path / 'cache')
    counts, info = count_dataset_pixels(dataset, num_workers=0,
                                        cache_dir=cache)
    assert osp.isfile(info['cache']) and not info['cache_hit']

    class Exploding(LabelMapPixelCounter):

        def count(self, item):
            raise AssertionError('counted despite the cache')

        def settings(self):  # same cache key as the default counter
            return dict(super().settings(), type='LabelMapPixelCounter')

    counts2, info2 = count_dataset_pixels(
        dataset, counter=Exploding(), num_workers=0, cache_dir=cache)
    assert info2['cache_hit'] and info2['fingerprint'] == info['fingerprint']
    assert counts2.tolist() == counts.tolist()

    # other settings, other key
    _, info3 = count_dataset_pixels(
        build_dataset(data_copy, reduce_zero_label=True), num_workers=0)
    assert info3['fingerprint'] != info['fingerprint']

    # rewrite one label file: new fingerprint, recount
    path = dataset.get_data_info(0)['seg_map_path']
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[:4, :4] = 3
    cv2.imwrite(path, label)
    counts4, info4 = count_dataset_pixels(
        build_dataset(data_copy), num_workers=0, cache_dir=cache)
    assert info4['fingerprint'] != info['fingerprint']
    assert not info4['cache_hit']
    assert counts4[3] > counts[3]

    os.remove(path)
    with pytest.raises(FileNotFoundError, match=osp.basename(path)):
        count_dataset_pixels(build_dataset(data_copy), num_workers=0)


@TASK_UTILS.register_module()
class _ConstantTestCounter(PixelCounter):
    """Counts (1, 2, 3, 4) per item: stands in for an RLE/polygon counter."""

    def items(self, dataset):
        return list(range(len(dataset)))

    def fingerprint(self, items):
        return f'{len(items)}'

    def count(self, item):
        return np.arange(1, self.num_classes + 1, dtype=np.int64)


def test_dataset_names_its_counter(toy_data_root):
    dataset = build_dataset(toy_data_root)
    dataset.pixel_counter = dict(type='_ConstantTestCounter')
    counts, info = count_dataset_pixels(dataset, num_workers=2,
                                        show_progress=False)
    assert counts.tolist() == [8, 16, 24, 32]
    assert info['counters'][0]['type'] == '_ConstantTestCounter'
    # get_pixel_counter() wins over the attribute; the override over both
    dataset.get_pixel_counter = lambda: LabelMapPixelCounter()
    counts, _ = count_dataset_pixels(dataset, num_workers=0)
    assert counts.tolist() == naive_counts(dataset).tolist()
    counts, _ = count_dataset_pixels(
        dataset, counter=dict(type='_ConstantTestCounter'), num_workers=0)
    assert counts.tolist() == [8, 16, 24, 32]
    with pytest.raises(TypeError, match='PixelCounter'):
        count_dataset_pixels(dataset, counter=42)
