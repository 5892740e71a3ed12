# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Hand-bone generator, converter (labels, folds, bad input) and dataset."""
import glob
import hashlib
import json
import logging
import os
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS

from mmseg_ext.datasets import HandBoneDataset
from mmseg_ext.datasets.converters.hand_bone import (HandBoneAnnotationError,
                                                     convert_hand_bone,
                                                     find_self_intersection,
                                                     make_group_folds,
                                                     rasterize_polygons,
                                                     read_hand_bone_json)
from mmseg_ext.datasets.generators.hand_bone import (HAND_BONE_CLASSES,
                                                     generate_hand_bone,
                                                     hand_bone_masks)
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.multilabel import (pack_multilabel, read_packed_label,
                                        unpack_multilabel)

C = len(HAND_BONE_CLASSES)
SIZE = 128
NAME_RE = re.compile(r'^ID\d{3}/image\d{13}_[RL]\.png$')


def _tree_digest(root):
    h = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(root, '**', '*'), recursive=True)):
        if osp.isfile(path):
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def _polys(json_path):
    with open(json_path) as f:
        data = json.load(f)
    return {a['label']: np.array(a['points'], np.int32)
            for a in data['annotations']}


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    """3 labelled patients + 1 test patient at 128x128, not converted."""
    root = str(tmp_path_factory.mktemp('hand_bone_gen'))
    info = generate_hand_bone(root, num_train_ids=3, num_test_ids=1,
                              size=SIZE, seed=0)
    return root, info


@pytest.fixture(scope='module')
def converted(generated, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('hand_bone_conv') / 'data')
    shutil.copytree(generated[0], root)
    summary = convert_hand_bone(root, num_folds=3, seed=0,
                                show_progress=False)
    return root, summary


@pytest.fixture
def fresh(generated, tmp_path):
    """A private copy of the generated (unconverted) dataset."""
    root = str(tmp_path / 'data')
    shutil.copytree(generated[0], root)
    return root


# --- generator ------------------------------------------------------------
def test_generator_layout(generated):
    root, info = generated
    assert len(info['train']) == 6 and len(info['test']) == 2
    for rel in info['train'] + info['test']:
        assert NAME_RE.match(rel), rel
    for rel in info['train']:
        img = cv2.imread(osp.join(root, 'train', 'DCM', rel),
                         cv2.IMREAD_UNCHANGED)
        assert img.shape == (SIZE, SIZE) and img.dtype == np.uint8
        with open(osp.join(root, 'train', 'outputs_json',
                           rel[:-4] + '.json')) as f:
            data = json.load(f)
        labels = [a['label'] for a in data['annotations']]
        assert labels == list(HAND_BONE_CLASSES)
        for a in data['annotations']:
            pts = np.array(a['points'])
            assert pts.dtype.kind == 'i' and pts.shape[1] == 2
            assert pts.min() >= 0 and pts.max() <= SIZE - 1
    # both hands of each patient, test images without labels
    ids = {r.split('/')[0] for r in info['train']}
    for pid in ids:
        sides = sorted(r[-5] for r in info['train'] if r.startswith(pid))
        assert sides == ['L', 'R']
    assert not osp.exists(osp.join(root, 'test', 'outputs_json'))
    assert osp.isfile(osp.join(root, 'test', 'DCM', info['test'][0]))


def test_generator_is_deterministic(tmp_path):
    a = generate_hand_bone(str(tmp_path / 'a'), 1, 1, SIZE, seed=5)
    b = generate_hand_bone(str(tmp_path / 'b'), 1, 1, SIZE, seed=5)
    c = generate_hand_bone(str(tmp_path / 'c'), 1, 1, SIZE, seed=6)
    assert a == b
    assert _tree_digest(str(tmp_path / 'a')) == \
        _tree_digest(str(tmp_path / 'b'))
    assert _tree_digest(str(tmp_path / 'a')) != \
        _tree_digest(str(tmp_path / 'c'))


def test_generator_bones_overlap_and_differ_in_size(generated):
    root, info = generated
    for rel in info['train']:
        polys = _polys(osp.join(root, 'train', 'outputs_json',
                                rel[:-4] + '.json'))
        masks = hand_bone_masks(polys, (SIZE, SIZE))
        areas = masks.sum((1, 2))
        assert (areas > 0).all()
        radius = areas[HAND_BONE_CLASSES.index('Radius')]
        pisiform = areas[HAND_BONE_CLASSES.index('Pisiform')]
        assert radius > 10 * pisiform
        assert (masks.sum(0) >= 2).any()  # overlapping bones
        # left hands are mirrored: the thumb is on the other side
        thumb = polys['finger-3'][:, 0].mean()
        little = polys['finger-19'][:, 0].mean()
        assert (thumb < little) == rel.endswith('_R.png')


@pytest.mark.parametrize('kwargs, match', [
    (dict(size=64), '`size` should be an int >= 128'),
    (dict(num_train_ids=-1), '`num_train_ids` should be an int >= 0'),
    (dict(num_test_ids=1.5), '`num_test_ids` should be an int >= 0'),
    (dict(num_train_ids=999, num_test_ids=1), 'should be <= 999'),
])
def test_generator_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_hand_bone(str(tmp_path), **kwargs)


# --- converter -------------------------------------------------------------
def test_converter_output_equals_direct_rasterisation(converted):
    root, summary = converted
    assert len(summary['converted']) == 6
    assert summary['bad'] == [] and summary['warnings'] == []
    for rel in summary['converted']:
        polys = _polys(osp.join(root, 'train', 'outputs_json',
                                rel[:-4] + '.json'))
        # reference: one full-frame fillPoly per class, then pack
        masks = np.zeros((C, SIZE, SIZE), np.uint8)
        for k, name in enumerate(HAND_BONE_CLASSES):
            cv2.fillPoly(masks[k], [polys[name]], 1)
        packed = read_packed_label(
            osp.join(root, 'train', 'packed_labels', rel), C)
        np.testing.assert_array_equal(packed, pack_multilabel(masks))
        np.testing.assert_array_equal(unpack_multilabel(packed, C), masks)


def test_rasterize_clips_polygons_outside_the_image():
    polys = {'Radius': np.array([[-20, -20], [60, -10], [30, 50]], np.int32),
             'Ulna': np.array([[100, 100], [200, 100], [150, 200]],
                              np.int32)}
    packed = rasterize_polygons(polys, (64, 64))
    ref = np.zeros((C, 64, 64), np.uint8)
    cv2.fillPoly(ref[HAND_BONE_CLASSES.index('Radius')], [polys['Radius']],
                 1)
    np.testing.assert_array_equal(unpack_multilabel(packed, C), ref)


def test_folds_group_patients_and_partition_ids(converted):
    root, _ = converted
    split_dir = osp.join(root, 'splits')

    def lines(name):
        with open(osp.join(split_dir, name)) as f:
            return f.read().split()

    everything = lines('all.txt')
    assert len(everything) == 6
    vals = [lines(f'fold{k}_val.txt') for k in range(3)]
    seen = []
    for k, val in enumerate(vals):
        assert val, f'fold {k} is empty'
        ids = {r.split('/')[0] for r in val}
        # both hands of every validation patient are in this fold
        assert sorted(val) == sorted(r for r in everything
                                     if r.split('/')[0] in ids)
        train = lines(f'fold{k}_train.txt')
        assert sorted(train + val) == sorted(everything)
        assert not {r.split('/')[0] for r in train} & ids
        seen += val
    assert sorted(seen) == sorted(everything)  # a partition
    assert not glob.glob(osp.join(split_dir, 'fold3_*'))


def test_make_group_folds_is_deterministic_and_balanced():
    rels = [f'ID{i:03d}/image{i:013d}_{s}.png' for i in range(1, 21)
            for s in 'LR']
    a = make_group_folds(rels, 5, seed=0)
    assert a == make_group_folds(rels, 5, seed=0)
    assert a != make_group_folds(rels, 5, seed=1)
    assert sorted(np.bincount(list(a.values()))) == [4] * 5
    with pytest.raises(ValueError, match='`num_folds` should be an int >= 2'):
        make_group_folds(rels, 1)
    with pytest.raises(ValueError, match=r'number of patients \(20\)'):
        make_group_folds(rels, 21)


def test_rerun_skips_up_to_date_labels(fresh):
    first = convert_hand_bone(fresh, num_folds=2, show_progress=False)
    assert len(first['converted']) == 6
    again = convert_hand_bone(fresh, num_folds=2, show_progress=False)
    assert again['converted'] == [] and len(again['skipped']) == 6
    rel = first['converted'][0]
    json_path = osp.join(fresh, 'train', 'outputs_json', rel[:-4] + '.json')
    with open(json_path) as f:
        data = json.load(f)
    data['annotations'][0]['points'][0][0] += 1  # an edited JSON
    with open(json_path, 'w') as f:
        json.dump(data, f)
    os.remove(osp.join(fresh, 'train', 'packed_labels', first['converted'][1]))
    third = convert_hand_bone(fresh, num_folds=2, show_progress=False)
    assert sorted(third['converted']) == sorted(first['converted'][:2])
    forced = convert_hand_bone(fresh, num_folds=2, force=True,
                               show_progress=False)
    assert len(forced['converted']) == 6


def _first(root):
    rel = sorted(glob.glob(osp.join(root, 'train', 'DCM', '*', '*.png')))[0]
    rel = osp.relpath(rel, osp.join(root, 'train', 'DCM'))
    return rel, osp.join(root, 'train', 'outputs_json', rel[:-4] + '.json')


def _edit_json(path, edit):
    with open(path) as f:
        data = json.load(f)
    edit(data)
    with open(path, 'w') as f:
        json.dump(data, f)


def _set(index, key, value):
    def edit(data):
        data['annotations'][index][key] = value
    return edit


BAD_CASES = {
    'unknown_label': (_set(3, 'label', 'finger-20'),
                      r"annotation 3 has unknown label 'finger-20'"),
    'too_few_points': (_set(5, 'points', [[1, 1], [5, 5]]),
                       r"annotation 5 \('finger-6'\) has 2 point\(s\); a "
                       'polygon needs at least 3'),
    'zero_area': (_set(7, 'points', [[1, 1], [5, 5], [9, 9], [3, 3]]),
                  r"annotation 7 \('finger-8'\): the polygon has zero area"),
    'duplicate_class': (_set(2, 'label', 'finger-1'),
                        r"annotation 2 \('finger-1'\) repeats the class of "
                        'annotation 0'),
    'bad_points': (_set(4, 'points', [[1, 'a'], [2, 3], [4, 5]]),
                   r"annotation 4 \('finger-5'\): \"points\" should be a "
                   'list of'),
    'outside_entirely': (_set(9, 'points', [[500, 500], [600, 500],
                                            [550, 600]]),
                         r"annotation 9 \('finger-10'\): the polygon .* "
                         'lies entirely outside the 128x128 image'),
    'no_label_key': (lambda d: d['annotations'][1].pop('label'),
                     r'annotation 1 should have "label" and "points"'),
    'no_annotations': (lambda d: d.pop('annotations'),
                       r'should be a JSON object with an "annotations" list'),
}


@pytest.mark.parametrize('case', sorted(BAD_CASES))
def test_bad_annotation_is_reported_with_file_and_index(fresh, case):
    edit, match = BAD_CASES[case]
    rel, json_path = _first(fresh)
    _edit_json(json_path, edit)
    with pytest.raises(HandBoneAnnotationError) as err:
        convert_hand_bone(fresh, num_folds=2, show_progress=False)
    message = str(err.value)
    assert json_path in message
    assert re.search(match, message), message
    assert '1 of 6 hand-bone image(s) cannot be converted' in message
    assert '--skip-bad' in message
    # no split file without --skip-bad; the good labels are written
    assert not osp.exists(osp.join(fresh, 'splits', 'all.txt'))
    assert len(glob.glob(osp.join(fresh, 'train', 'packed_labels', '*',
                                  '*.png'))) == 5


def test_missing_json_and_unreadable_image(fresh):
    rel, json_path = _first(fresh)
    os.remove(json_path)
    rels = sorted(osp.relpath(p, osp.join(fresh, 'train', 'DCM'))
                  for p in glob.glob(osp.join(fresh, 'train', 'DCM', '*',
                                              '*.png')))
    broken = osp.join(fresh, 'train', 'DCM', rels[1])
    with open(broken, 'wb') as f:
        f.write(b'not a png')
    with pytest.raises(HandBoneAnnotationError) as err:
        convert_hand_bone(fresh, num_folds=2, show_progress=False)
    message = str(err.value)
    assert f'{json_path}: annotation file is missing' in message
    assert f'{broken}: image cannot be read' in message
    assert '2 of 6' in message


class _ListHandler(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelno, record.getMessage()))


def test_skip_bad_leaves_bad_files_out_of_the_splits(fresh):
    rel, json_path = _first(fresh)
    _edit_json(json_path, _set(0, 'label', 'Thumb'))
    logger = logging.getLogger('test_hand_bone_skip_bad')
    handler = _ListHandler()
    logger.addHandler(handler)
    summary = convert_hand_bone(fresh, num_folds=2, skip_bad=True,
                                show_progress=False, logger=logger)
    logger.removeHandler(handler)
    assert summary['bad'] == [rel]
    with open(summary['splits']['all']) as f:
        listed = f.read().split()
    assert rel not in listed and len(listed) == 5
    assert (logging.WARNING,
            f"skipped bad file: {json_path}: annotation 0 has unknown label "
            "'Thumb'; labels should be one of the 29 classes 'finger-1' ... "
            "'Ulna'") in handler.messages


def test_points_outside_the_image_warn_and_are_clipped(fresh):
    rel, json_path = _first(fresh)

    def edit(data):
        data['annotations'][27]['points'][0] = [-15, 200]  # Radius
    _edit_json(json_path, edit)
    summary = convert_hand_bone(fresh, num_folds=2, show_progress=False)
    assert rel in summary['converted']
    assert len(summary['warnings']) == 1
    assert "annotation 27 ('Radius'): 1 of" in summary['warnings'][0]
    assert 'outside the 128x128 image' in summary['warnings'][0]
    polys = _polys(json_path)
    expected = hand_bone_masks(polys, (SIZE, SIZE))
    packed = read_packed_label(
        osp.join(fresh, 'train', 'packed_labels', rel), C)
    np.testing.assert_array_equal(unpack_multilabel(packed, C), expected)


def test_json_without_some_classes_warns(fresh):
    rel, json_path = _first(fresh)
    _edit_json(json_path, lambda d: d['annotations'].pop(26))  # Pisiform
    summary = convert_hand_bone(fresh, num_folds=2, show_progress=False)
    assert rel in summary['converted']
    assert any("class(es) ['Pisiform']" in w for w in summary['warnings'])


def test_converter_needs_images(tmp_path):
    with pytest.raises(FileNotFoundError, match='no PNG image found under'):
        convert_hand_bone(str(tmp_path), show_progress=False)


# --- dataset ---------------------------------------------------------------
def test_dataset_splits(converted, generated):
    root, _ = converted
    sizes = {}
    for split, fold in (('train', 0), ('val', 0), ('all', None),
                        ('test', None)):
        ds = DATASETS.build(
            dict(type='HandBoneDataset', data_root=root, split=split,
                 fold=fold))
        assert isinstance(ds, HandBoneDataset)
        sizes[split] = len(ds)
        info = ds.get_data_info(0)
        assert info['num_classes'] == C
        assert osp.isfile(info['img_path'])
        if split == 'test':
            assert 'seg_map_path' not in info
            assert info['img_path'].startswith(osp.join(root, 'test', 'DCM'))
        else:
            assert osp.isfile(info['seg_map_path'])
    assert sizes['train'] + sizes['val'] == sizes['all'] == 6
    assert sizes['test'] == 2
    assert ds.metainfo['classes'] == HAND_BONE_CLASSES
    assert len(ds.metainfo['palette']) == C
    assert ds.get_pixel_counter() == dict(type='PackedLabelPixelCounter')


def test_dataset_pipeline_gives_packed_targets(converted):
    root, _ = converted
    ds = DATASETS.build(
        dict(type='HandBoneDataset', data_root=root, split='val', fold=1,
             pipeline=[
                 dict(type='LoadImageFromFile'),
                 dict(type='LoadMultiLabelAnnotations'),
                 dict(type='RandomFlip', prob=1.0),
                 dict(type='PackMultiLabelSegInputs'),
             ]))
    sample = ds[0]
    assert sample['inputs'].shape == (3, SIZE, SIZE)
    gt = sample['data_samples'].gt_sem_seg.data
    assert tuple(gt.shape) == (2, SIZE, SIZE)
    packed = read_packed_label(ds.get_data_info(0)['seg_map_path'], C)
    np.testing.assert_array_equal(
        gt.numpy().view(np.uint16).transpose(1, 2, 0), packed[:, ::-1])


def test_dataset_errors_point_to_the_converter(generated, fresh):
    with pytest.raises(FileNotFoundError,
                       match=r'fold0_train.txt .* does not exist; run '
                       r'`python tools/dataset_converters/hand_bone.py'):
        DATASETS.build(dict(type='HandBoneDataset', data_root=fresh))
    convert_hand_bone(fresh, num_folds=2, show_progress=False)
    rel, _ = _first(fresh)
    os.remove(osp.join(fresh, 'train', 'packed_labels', rel))
    with pytest.raises(FileNotFoundError,
                       match=r'1 of 6 packed label\(s\) listed in .* are '
                       'missing'):
        DATASETS.build(dict(type='HandBoneDataset', data_root=fresh,
                            split='all'))
    with pytest.raises(ValueError, match='`split` should be one of'):
        HandBoneDataset(data_root=fresh, split='valid')
    with pytest.raises(ValueError, match="`fold` should be an int >= 0 for "
                       "split='val', but got None"):
        HandBoneDataset(data_root=fresh, split='val', fold=None)
    with pytest.raises(TypeError, match='sets `data_prefix`'):
        HandBoneDataset(data_root=fresh, data_prefix=dict(img_path='x'))


NEW_BAD_CASES = {
    # a list label stopped the worker pool with "unhashable type: 'list'"
    'list_label': (_set(3, 'label', ['finger-4']),
                   r'annotation 3: "label" should be a str \(a class name\), '
                   r"but got list \['finger-4'\]"),
    'dict_label': (_set(3, 'label', {'name': 'finger-4'}),
                   r'annotation 3: "label" should be a str'),
    # 3e9 wrapped around int32 into a wrong mask with a numpy warning
    'huge_point': (_set(4, 'points', [[1, 1], [3e9, 5], [4, 9]]),
                   r"annotation 4 \('finger-5'\): point 1 \[3000000000.0, "
                   r'5.0\] is more than 1048576 pixels'),
    'bool_point': (_set(4, 'points', [[1, 1], [True, 5], [4, 9]]),
                   r'"points" should be a list of \[x, y\] numbers'),
    'string_point': (_set(4, 'points', [[1, 1], ['5', 5], [4, 9]]),
                     r'"points" should be a list of \[x, y\] numbers'),
    'three_coords': (_set(4, 'points', [[1, 1, 0], [5, 5, 0], [4, 9, 0]]),
                     r'"points" should be a list of \[x, y\] numbers'),
    'points_not_list': (_set(4, 'points', 'M 1 1 L 5 5'),
                        r'"points" should be a list of \[x, y\] numbers'),
    'annotation_not_dict': (lambda d: d['annotations'].insert(0, 'x'),
                            r'annotation 0 should have "label" and "points"'),
}


@pytest.mark.parametrize('case', sorted(NEW_BAD_CASES))
def test_bad_values_are_errors_with_file_and_field(fresh, case):
    edit, match = NEW_BAD_CASES[case]
    rel, json_path = _first(fresh)
    _edit_json(json_path, edit)
    with pytest.raises(HandBoneAnnotationError) as err:
        read_hand_bone_json(json_path, (SIZE, SIZE))
    assert isinstance(err.value, InputError)
    assert err.value.path == json_path
    assert err.value.where.startswith('annotation ')
    assert str(err.value).startswith(f'{json_path}: annotation ')
    assert re.search(match, str(err.value)), str(err.value)


def test_unparsable_json_is_an_error(tmp_path):
    path = str(tmp_path / 'a.json')
    for text in ('{"annotations": [', '[' * 100000,
                 '{"annotations": [{"label": "Radius", "points": [[1, '
                 + '1' * 5000 + ']]}]}'):
        with open(path, 'w') as f:
            f.write(text)
        with pytest.raises(HandBoneAnnotationError,
                           match=f'{re.escape(path)}: cannot be read as JSON'):
            read_hand_bone_json(path, (SIZE, SIZE))


def test_list_label_is_skipped_with_worker_processes(fresh):
    # The converter's pool used to stop on it, --skip-bad or not.
    rel, json_path = _first(fresh)
    _edit_json(json_path, _set(0, 'label', ['finger-1']))
    summary = convert_hand_bone(fresh, num_folds=2, nproc=2, skip_bad=True,
                                show_progress=False)
    assert summary['bad'] == [rel]
    assert len(summary['converted']) == 5


def test_self_intersecting_polygon_warns_and_is_converted(fresh):
    rel, json_path = _first(fresh)
    # a bow-tie with unequal lobes (nonzero area)
    _edit_json(json_path, _set(27, 'points',
                               [[10, 10], [60, 40], [60, 10], [10, 60]]))
    summary = convert_hand_bone(fresh, num_folds=2, show_progress=False)
    assert rel in summary['converted']
    crossing = [w for w in summary['warnings'] if 'crosses itself' in w]
    assert crossing == [f"{json_path}: annotation 27 ('Radius'): the polygon "
                        'crosses itself (edge 0 meets edge 2, points rounded '
                        'to pixels); it is rasterised as cv2.fillPoly fills '
                        'it (regions covered an odd number of times may be '
                        'left empty)']


@pytest.mark.parametrize('pts, expected', [
    ([[0, 0], [10, 0], [10, 10], [0, 10]], None),
    ([[0, 0], [0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], None),  # repeats
    ([[0, 0], [10, 10], [10, 0], [0, 10]], (0, 2)),  # bow-tie
    ([[0, 0], [10, 0], [10, 10], [5, 0], [0, 10]], (0, 2)),  # touches
    ([[0, 0], [10, 0], [10, 5], [0, 5], [0, 10], [10, 10], [10, 0]],
     (0, 5)),  # collinear overlap of edges 0 and 6 -> first pair (0, 5)
])
def test_find_self_intersection(pts, expected):
    assert find_self_intersection(np.array(pts)) == expected


def test_error_survives_pickling():
    import pickle
    err = HandBoneAnnotationError('a.json: annotation 3: bad', path='a.json',
                                  where='annotation 3', value=[1])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is HandBoneAnnotationError
    assert str(back) == str(err) and back.where == 'annotation 3'
    assert back.value == [1]
