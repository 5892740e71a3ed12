# Copyright (c) mmseg_ext contributors. All rights reserved.
import csv
import filecmp
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from mmseg.registry import DATASETS

from mmseg_ext.datasets import BuildingRLEDataset
from mmseg_ext.datasets.building_rle import (CSVRowError, read_rle_csv,
                                            split_indices)
from mmseg_ext.datasets.generators.building import generate_buildings
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.rle import rle_decode

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadRLEAnnotations')]


@pytest.fixture(scope='module')
def building_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('building')
    stats = generate_buildings(str(root), num_train=100, num_test=30,
                               train_size=64, test_size=32, seed=0)
    return str(root), stats


def _rows(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_generator_layout(building_root):
    root, _ = building_root
    train = _rows(osp.join(root, 'train.csv'))
    test = _rows(osp.join(root, 'test.csv'))
    assert train[0] == ['img_id', 'img_path', 'mask_rle']
    assert test[0] == ['img_id', 'img_path']
    assert len(train) == 101 and len(test) == 31
    assert train[1][:2] == ['TRAIN_0000', './train_img/TRAIN_0000.png']
    assert test[1] == ['TEST_00000', './test_img/TEST_00000.png']
    assert all(osp.isfile(osp.join(root, r[1])) for r in train[1:])
    sub = _rows(osp.join(root, 'sample_submission.csv'))
    assert sub[0] == ['img_id', 'mask_rle'] and sub[1] == ['TEST_00000', '-1']
    import cv2
    assert cv2.imread(osp.join(root, train[1][1])).shape == (64, 64, 3)
    assert cv2.imread(osp.join(root, test[1][1])).shape == (32, 32, 3)
    assert not any(f.startswith('.') for f in os.listdir(root))


def test_generator_foreground_ratios(building_root):
    root, stats = building_root
    for split in ('train', 'test'):
        s = stats[split]
        assert 0.04 < s['mean_fg_ratio'] < 0.09, s
        assert 0.1 <= s['frac_under_1pct'] <= 0.35, s  # about 1 in 5
        assert s['frac_5_to_10pct'] >= 0.5, s
    assert stats['train']['num_empty'] >= 1
    assert stats['test']['num_empty'] >= 1  # empty test tiles included
    # The CSV's '-1' rows are exactly the empty masks.
    rows = _rows(osp.join(root, 'train.csv'))[1:]
    ratios = [rle_decode('' if r[2] == '-1' else r[2], (64, 64)).mean()
              for r in rows]
    assert np.isclose(np.mean(ratios), stats['train']['mean_fg_ratio'])
    assert sum(r[2] == '-1' for r in rows) == stats['train']['num_empty']


def test_generator_is_deterministic(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    kwargs = dict(num_train=4, num_test=3, train_size=64, test_size=32)
    generate_buildings(a, seed=3, **kwargs)
    generate_buildings(b, seed=3, **kwargs)
    generate_buildings(c, seed=4, **kwargs)
    cmp = filecmp.dircmp(a, b)
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for sub in ('train_img', 'test_img'):
        files = sorted(os.listdir(osp.join(a, sub)))
        match, mismatch, errors = filecmp.cmpfiles(
            osp.join(a, sub), osp.join(b, sub), files, shallow=False)
        assert mismatch == [] and errors == []
    assert not filecmp.cmp(osp.join(a, 'train.csv'),
                           osp.join(c, 'train.csv'), shallow=False)


def test_generator_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='`train_size` should be an int'):
        generate_buildings(str(tmp_path), train_size=16)
    with pytest.raises(ValueError, match='`test_scale` should be in'):
        generate_buildings(str(tmp_path), test_scale=2.0)


def _build(root, **kwargs):
    cfg = dict(type='BuildingRLEDataset', data_root=root, pipeline=PIPELINE,
               serialize_data=False)  # skips mmengine's gc.collect()
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def _ids(dataset):
    return [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]


def test_dataset_loads_and_decodes(building_root):
    root, _ = building_root
    ds = _build(root, split='all', image_size=(64, 64))
    assert isinstance(ds, BuildingRLEDataset)
    assert ds.metainfo['classes'] == ('building', )
    assert len(ds) == 100
    info = ds.get_data_info(0)
    assert info['csv_line'] == 2 and info['img_id'] == 'TRAIN_0000'
    assert (info['height'], info['width']) == (64, 64)
    assert isinstance(info['mask_rle'], str)  # decoded at load, not init
    rows = _rows(osp.join(root, 'train.csv'))
    for i in (0, 5, 17):
        sample = ds[i]
        gt = sample['gt_seg_map']
        assert gt.shape == (64, 64) and gt.dtype == np.uint8
        rle = rows[i + 1][2]
        expected = rle_decode('' if rle == '-1' else rle, (64, 64))
        np.testing.assert_array_equal(gt, expected)
    assert ds.get_pixel_counter() == dict(type='RLEPixelCounter')


@pytest.mark.parametrize('seed', [0, 1])
def test_split_by_seed_is_disjoint_and_complete(building_root, seed):
    root, _ = building_root
    train = _build(root, split='train', val_ratio=0.2, seed=seed)
    val = _build(root, split='val', val_ratio=0.2, seed=seed)
    assert len(val) == 20 and len(train) == 80
    assert not set(_ids(train)) & set(_ids(val))
    assert set(_ids(train)) | set(_ids(val)) == set(_ids(_build(
        root, split='all')))
    assert _ids(val) == sorted(_ids(val))  # CSV order within a split
    again = _build(root, split='val', val_ratio=0.2, seed=seed)
    assert _ids(again) == _ids(val)


def test_seeds_give_different_splits(building_root):
    root, _ = building_root
    assert _ids(_build(root, split='val', seed=0)) != _ids(
        _build(root, split='val', seed=1))


def test_folds_partition_the_rows(building_root):
    vals = [set(split_indices(100, 'val', fold=k, num_folds=5))
            for k in range(5)]
    assert set.union(*vals) == set(range(100))
    assert sum(len(v) for v in vals) == 100
    root, _ = building_root
    all_ids = set(_ids(_build(root, split='all')))
    for fold in (0, 4):  # the dataset uses split_indices
        val = set(_ids(_build(root, split='val', fold=fold, num_folds=5)))
        train = set(_ids(_build(root, split='train', fold=fold,
                                num_folds=5)))
        assert not val & train and val | train == all_ids
        assert len(val) == 20


def test_split_indices_validation():
    assert split_indices(5, 'all') == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match='`split` should be one of'):
        split_indices(5, 'test')
    with pytest.raises(ValueError, match='`fold` should be an int in'):
        split_indices(5, 'val', fold=5, num_folds=5)
    with pytest.raises(ValueError, match='`val_ratio` should be in'):
        split_indices(5, 'val', val_ratio=1.0)
    with pytest.raises(ValueError, match='`num_folds` should be'):
        split_indices(5, 'val', fold=0, num_folds=1)


def test_test_csv_without_mask_column(building_root):
    root, _ = building_root
    ds = _build(root, ann_file='test.csv', split='all', test_mode=True,
                pipeline=[dict(type='LoadImageFromFile')])
    assert len(ds) == 30 and ds.has_rle is False
    assert ds.get_data_info(0)['mask_rle'] is None
    assert ds[0]['img'].shape == (32, 32, 3)
    with pytest.raises(CSVRowError, match=r'test\.csv: line 1: the header'):
        _build(root, ann_file='test.csv', split='train')


# Bad rows: every error names the CSV file and the line.
def _copy_with_csv(src, dst, lines):
    shutil.copytree(osp.join(src, 'train_img'), osp.join(dst, 'train_img'))
    with open(osp.join(dst, 'train.csv'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return str(dst)


@pytest.mark.parametrize('bad_line, match', [
    ('TRAIN_0001,./train_img/TRAIN_0001.png', 'should have 3 fields'),
    ('TRAIN_0001,./train_img/NOPE.png,-1', 'does not exist'),
    ('TRAIN_0001,./train_img/TRAIN_0001.png,1 2 3', 'even number of values'),
    ('TRAIN_0001,./train_img/TRAIN_0001.png,5 2 1 2', 'overlap or are out'),
    ('TRAIN_0001,./train_img/TRAIN_0001.png,1 x',
     "field 'mask_rle'.*got 'x'"),
    ('TRAIN_0001,./train_img/TRAIN_0001.png,1_0 2',
     "field 'mask_rle'.*got '1_0'"),
    ('TRAIN_0000,./train_img/TRAIN_0001.png,-1', 'duplicate img_id'),
    (',./train_img/TRAIN_0001.png,-1', 'should not be empty'),
])
def test_bad_rows_name_the_csv_line(building_root, tmp_path, bad_line, match):
    root, _ = building_root
    dst = _copy_with_csv(root, tmp_path / 'bad', [
        'img_id,img_path,mask_rle',
        'TRAIN_0000,./train_img/TRAIN_0000.png,-1',
        bad_line,
    ])
    with pytest.raises(CSVRowError, match=r'train\.csv: line 3\b.*' + match):
        _build(dst, split='all')


def test_missing_column_names_the_header_line(building_root, tmp_path):
    root, _ = building_root
    dst = _copy_with_csv(root, tmp_path / 'bad', [
        'img_id,path,mask_rle', 'TRAIN_0000,./train_img/TRAIN_0000.png,-1'
    ])
    with pytest.raises(CSVRowError,
                       match=r"train\.csv: line 1: .*missing \['img_path'\]"):
        _build(dst, split='all')


def test_runs_beyond_the_image_fail_at_load(building_root, tmp_path):
    root, _ = building_root
    dst = _copy_with_csv(root, tmp_path / 'bad', [
        'img_id,img_path,mask_rle',
        'TRAIN_0000,./train_img/TRAIN_0000.png,-1',
        'TRAIN_0001,./train_img/TRAIN_0001.png,4000 200',
    ])
    ds = _build(dst, split='all')  # the size is unknown at init
    ds[0]
    with pytest.raises(CSVRowError,
                       match=r"train\.csv: line 3 \(TRAIN_0001\), field "
                       r"'mask_rle' \(for the 64x64 image\): .*beyond"):
        ds[1]
    # With image_size the range is checked at init.
    with pytest.raises(CSVRowError, match=r'train\.csv: line 3\b.*beyond'):
        _build(dst, split='all', image_size=(64, 64))


def test_image_size_mismatch_names_the_line(building_root):
    root, _ = building_root
    ds = _build(root, split='all', image_size=(80, 64))
    with pytest.raises(CSVRowError,
                       match=r'train\.csv: line 2 \(TRAIN_0000\): the image '
                       r'is 64x64.*80x64'):
        ds[0]


def test_unreadable_image_names_the_line(building_root, tmp_path):
    root, _ = building_root
    dst = _copy_with_csv(root, tmp_path / 'bad', [
        'img_id,img_path,mask_rle',
        'TRAIN_0000,./train_img/TRAIN_0000.png,-1',
        'TRAIN_0001,./train_img/TRAIN_0001.png,-1',
    ])
    with open(osp.join(dst, 'train_img', 'TRAIN_0001.png'), 'wb') as f:
        f.write(b'not a png')
    ds = _build(dst, split='all')
    with pytest.raises(CSVRowError,
                       match=r'train\.csv: line 3: cannot load '
                       r"'TRAIN_0001'"):
        ds[1]


def test_bad_arguments():
    with pytest.raises(ValueError, match='`split` should be one of'):
        BuildingRLEDataset(split='test', lazy_init=True)
    with pytest.raises(ValueError, match='`image_size` should be None or'):
        BuildingRLEDataset(image_size=(0, 4), lazy_init=True)
    with pytest.raises(ValueError, match='`reduce_zero_label` should be'):
        BuildingRLEDataset(reduce_zero_label=True, lazy_init=True)


def _write_bytes(tmp_path, data, name='train.csv'):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize('data, line, field, match', [
    (b'', 1, None, 'the file is empty; expected a header such as'),
    (b'img_id,img_path,mask_rle\n', 2, None,
     'the file has a header but no rows'),
    (b'img_id,img_path,mask_rle\n\n\n', 4, None, 'header but no rows'),
    (b'img_id,img_path,img_id,mask_rle\na,b,c,d\n', 1, None,
     r"the column\(s\) \['img_id'\] more than once"),
    (b'img_id,img_path,mask_rle\nA,a.png,-1\nB,b.png,\xff\xfe1 2\n', 3, None,
     r"byte 44 is not UTF-8: got b'\\xff\\xfe1 '; expected a UTF-8"),
    ('img_id,img_path\nA,a.png\n'.encode('utf-16'), 1, None,
     'UTF-16 BOM: save the file as UTF-8'),
    (b'img_id,img_path,mask_rle\nA,a.png,-1\nA,b.png,-1\n', 3, 'img_id',
     r"duplicate img_id 'A' \(first on line 2\)"),
    (b'img_id,img_path,mask_rle\nA,a.png,-1\n  ,b.png,-1\n', 3, 'img_id',
     'should not be empty'),
    (b'img_id,img_path,mask_rle\nA,a.png,-1\nB, ,-1\n', 3, 'img_path',
     'should not be empty'),
])
def test_read_rle_csv_bad_files(tmp_path, data, line, field, match):
    path = _write_bytes(tmp_path, data)
    with pytest.raises(CSVRowError) as err:
        read_rle_csv(path)
    where = f'line {line}' + (f', field {field!r}' if field else '')
    assert str(err.value).startswith(f'{path}: {where}: '), str(err.value)
    assert re.search(match, str(err.value)), str(err.value)
    assert err.value.path == path and err.value.where == where
    assert isinstance(err.value, InputError)
    assert '\n' not in str(err.value)


def test_read_rle_csv_accepts_bom_and_long_rles(tmp_path):
    # An RLE of a noisy 1024 x 1024 mask is megabytes: past the csv
    # module's default field limit, which is restored afterwards.
    long_rle = ' '.join(f'{2 * i + 1} 1' for i in range(200000))
    limit = csv.field_size_limit()
    path = _write_bytes(tmp_path, ('\ufeffimg_id,img_path,mask_rle\n'
                                   f'A,a.png,{long_rle}\nB,b.png,-1\n'
                                   ).encode('utf-8'))
    rows, has_rle = read_rle_csv(path)
    assert has_rle and [r['img_id'] for r in rows] == ['A', 'B']
    assert rows[0]['mask_rle'] == long_rle and rows[1]['mask_rle'] == ''
    assert [r['csv_line'] for r in rows] == [2, 3]
    assert csv.field_size_limit() == limit
