# Copyright (c) mmseg_ext contributors. All rights reserved.
import os
import os.path as osp

import pytest
from mmseg.registry import DATASETS, TASK_UTILS

from mmseg_ext.datasets.generators.building import generate_buildings
from mmseg_ext.datasets.pixel_counters import (RLEPixelCounter,
                                              count_dataset_pixels,
                                              read_image_size)


@pytest.fixture(scope='module')
def building_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('building_counter')
    generate_buildings(str(root), num_train=12, num_test=2, train_size=64,
                       test_size=32, seed=1)
    return str(root)


def _dataset(root, **kwargs):
    cfg = dict(type='BuildingRLEDataset', data_root=root, split='all',
               serialize_data=False,
               pipeline=[dict(type='LoadImageFromFile'),
                         dict(type='LoadRLEAnnotations')])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def _decoded_counts(dataset):
    fg = total = 0
    for i in range(len(dataset)):
        gt = dataset[i]['gt_seg_map']
        fg += int(gt.sum())
        total += gt.size
    return fg, total


@pytest.mark.parametrize('image_size', [None, (64, 64)])
def test_counts_equal_decode_then_count(building_root, image_size):
    dataset = _dataset(building_root, image_size=image_size)
    fg, total = _decoded_counts(dataset)
    assert fg > 0
    counter = TASK_UTILS.build(dict(type='RLEPixelCounter'))
    assert isinstance(counter, RLEPixelCounter)
    counter.setup(dataset)
    assert counter.num_classes == 1
    items = counter.items(dataset)
    assert (items[0][3] is None) == (image_size is None)
    counts = sum(counter.count(item) for item in items)
    assert counts.tolist() == [fg]

    two = RLEPixelCounter(num_classes=2)
    two.setup(dataset)
    counts = sum(two.count(item) for item in items)
    assert counts.tolist() == [total - fg, fg]


def test_count_dataset_pixels_uses_the_dataset_counter_and_cache(
        building_root, tmp_path):
    dataset = _dataset(building_root)
    fg, _ = _decoded_counts(dataset)
    counts, info = count_dataset_pixels(
        dataset, num_workers=2, cache_dir=str(tmp_path), show_progress=False)
    assert counts.tolist() == [fg]
    assert info['counters'][0]['type'] == 'RLEPixelCounter'
    assert not info['cache_hit']
    counts2, info2 = count_dataset_pixels(
        dataset, num_workers=2, cache_dir=str(tmp_path), show_progress=False)
    assert info2['cache_hit'] and counts2.tolist() == [fg]


def test_fingerprint_follows_csv_rows_and_split(building_root, tmp_path):
    counter = RLEPixelCounter(num_classes=1)
    full = _dataset(building_root)
    val = _dataset(building_root, split='val', val_ratio=0.5)
    fp_full = counter.fingerprint(counter.items(full))
    assert fp_full == counter.fingerprint(counter.items(full))
    assert fp_full != counter.fingerprint(counter.items(val))
    # The CSV's size/mtime are part of the stamp.
    csv_path = osp.join(building_root, 'train.csv')
    stat = os.stat(csv_path)
    os.utime(csv_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        assert fp_full != counter.fingerprint(counter.items(full))
    finally:
        os.utime(csv_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert RLEPixelCounter(num_classes=2).fingerprint(
        counter.items(full)) != fp_full


def test_bad_rle_for_the_image_names_the_line():
    counter = RLEPixelCounter(num_classes=1)
    with pytest.raises(ValueError, match=r'train\.csv, line 4: .*beyond'):
        counter.count(('train.csv', 4, '1 100', 8, 8, 'x.png'))
    assert counter.count(('train.csv', 4, '-1', 8, 8, 'x.png')).tolist() == [
        0
    ]
    assert counter.count(('train.csv', 4, '3 5 10 2', 8, 8,
                          'x.png')).tolist() == [7]


def test_num_classes_validation():
    with pytest.raises(ValueError, match='should be 1 .* or 2'):
        RLEPixelCounter(num_classes=3)


def test_test_csv_has_nothing_to_count(building_root):
    dataset = _dataset(building_root, ann_file='test.csv', test_mode=True,
                       pipeline=[])
    with pytest.raises(ValueError, match='should have an RLE string'):
        RLEPixelCounter(num_classes=1).items(dataset)


def test_read_image_size_reads_the_header_only(building_root, tmp_path):
    path = osp.join(building_root, 'train_img', 'TRAIN_0000.png')
    assert read_image_size(path) == (64, 64)
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'nope')
    with pytest.raises(ValueError, match='cannot read the size'):
        read_image_size(str(bad))


def test_per_item_rows_equal_each_decoded_row(building_root, tmp_path):
    # RareClassSampler's per-image counts, straight from the RLE runs.
    dataset = _dataset(building_root)
    rows, info = count_dataset_pixels(dataset, num_workers=0,
                                      cache_dir=str(tmp_path),
                                      per_item=True, show_progress=False)
    expected = [[int(dataset[i]['gt_seg_map'].sum())]
                for i in range(len(dataset))]
    assert rows.shape == (len(dataset), 1)
    assert rows.tolist() == expected
    assert sum(r[0] for r in expected) > 0
    totals, info = count_dataset_pixels(dataset, num_workers=0,
                                        cache_dir=str(tmp_path),
                                        show_progress=False)
    assert info['cache_hit'] and totals.tolist() == rows.sum(0).tolist()
