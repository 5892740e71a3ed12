# Copyright (c) mmseg_ext contributors. All rights reserved.
"""HandBoneDataset(unify_hands=True): hand side, flip at load (image and
packed labels, pixel-exact), the UnifyFlip transform."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS, TRANSFORMS

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import generate_hand_bone
from mmseg_ext.datasets.hand_bone import (hand_side_from_name,
                                          resolve_hand_side)
from mmseg_ext.datasets.transforms import insert_unify_flip, unflip_array
from mmseg_ext.utils.multilabel import read_packed_label

SIZE = 128
LOAD_PACK = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]
# The configs' test pipeline: the label is loaded after the image resize.
RESIZE_FIRST = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    """2 labelled patients (an R and an L hand each) + 1 test patient."""
    root = str(tmp_path_factory.mktemp('hand_unify') / 'data')
    generate_hand_bone(root, num_train_ids=2, num_test_ids=1, size=SIZE)
    convert_hand_bone(root, num_folds=2, show_progress=False)
    return root


def _build(root, **kwargs):
    cfg = dict(type='HandBoneDataset', data_root=root, split='all',
               pipeline=LOAD_PACK)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


# --- side ------------------------------------------------------------------
@pytest.mark.parametrize('name, side', [
    ('ID001/image1661130828152_R.png', 'R'),
    ('ID001/image1661130914565_L.png', 'L'),
    ('image_l.png', 'L'),
    ('a/b_r.jpg', 'R'),
    ('ID001/image_L2.png', None),
    ('ID001/LR.png', None),
    ('ID_L/image.png', None),  # the folder does not count
])
def test_side_from_name(name, side):
    assert hand_side_from_name(name) == side


def test_side_mapping_and_callable_win_over_the_name():
    rel = 'ID001/img_R.png'
    assert resolve_hand_side(rel, {rel: 'L'}) == 'L'  # relative path
    assert resolve_hand_side(rel, {'img_R': 'left'}) == 'L'  # stem
    assert resolve_hand_side(rel, {'img_R.png': 'l'}) == 'L'  # file name
    assert resolve_hand_side(rel, {'other': 'L'}) == 'R'  # falls back
    assert resolve_hand_side('ID001/x.png', lambda r: 'Right') == 'R'
    assert resolve_hand_side('ID001/x.png', lambda r: None) is None
    with pytest.raises(ValueError, match="'L' or 'R'"):
        resolve_hand_side(rel, {rel: 'up'})


def test_dataset_argument_errors(root, tmp_path):
    with pytest.raises(ValueError, match='unknown_side'):
        _build(root, unify_hands=True, unknown_side='drop')
    with pytest.raises(TypeError, match='unify_hands'):
        _build(root, unify_hands='yes')
    with pytest.raises(TypeError, match='hand_side'):
        _build(root, unify_hands=True, hand_side=3)
    bad = tmp_path / 'sides.json'
    bad.write_text(json.dumps(['L']))
    with pytest.raises(ValueError, match='sides.json'):
        _build(root, unify_hands=True, hand_side=str(bad))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        _build(root, unify_hands=True,
               hand_side=str(tmp_path / 'missing.json'))


def test_sides_in_data_infos(root, tmp_path):
    ds = _build(root, unify_hands=True)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        side = hand_side_from_name(info['img_path'])
        assert info['hand_side'] == side
        assert info['unify_flip'] is (side == 'L')
    assert sorted(ds.get_data_info(i)['hand_side']
                  for i in range(len(ds))) == ['L', 'L', 'R', 'R']
    plain = _build(root)  # off: nothing flips, sides still recorded
    assert not any(plain.get_data_info(i)['unify_flip']
                   for i in range(len(plain)))
    # a JSON mapping overrides the names: every image is a left hand
    rels = [osp.relpath(ds.get_data_info(i)['img_path'],
                        osp.join(root, 'train', 'DCM'))
            for i in range(len(ds))]
    path = tmp_path / 'sides.json'
    path.write_text(json.dumps({r: 'L' for r in rels}))
    mapped = _build(root, unify_hands=True, hand_side=str(path))
    assert all(mapped.get_data_info(i)['unify_flip']
               for i in range(len(mapped)))


def test_unknown_side_error_or_keep(root):
    """A test image named without _L/_R: an error naming it, or (``keep``)
    unflipped; a mapping that knows it resolves it."""
    ds = _build(root, split='test', unify_hands=True)
    assert len(ds) == 2
    no_side = osp.join(root, 'test', 'DCM', 'ID003', 'plain.png')
    shutil.copy(ds.get_data_info(0)['img_path'], no_side)
    try:
        with pytest.raises(ValueError, match='plain.png'):
            _build(root, split='test', unify_hands=True)
        kept = _build(root, split='test', unify_hands=True,
                      unknown_side='keep')
        infos = {osp.basename(kept.get_data_info(i)['img_path']):
                 kept.get_data_info(i) for i in range(len(kept))}
        assert infos['plain.png']['hand_side'] is None
        assert infos['plain.png']['unify_flip'] is False
        mapped = _build(root, split='test', unify_hands=True,
                        hand_side={'plain': 'L'})
        assert [mapped.get_data_info(i)['unify_flip']
                for i in range(3)].count(True) == 2
        # without unify_hands an unknown side is no error
        assert len(_build(root, split='test')) == 3
    finally:
        os.remove(no_side)


# --- flip at load -----------------------------------------------------------
def test_left_hands_flip_pixel_exact(root):
    ds = _build(root, unify_hands=True)
    assert [t for t in ds.pipeline.transforms
            if type(t).__name__ == 'UnifyFlip']
    for i in range(len(ds)):
        out = ds[i]
        meta = out['data_samples'].metainfo
        img = cv2.imread(meta['img_path'], cv2.IMREAD_COLOR)
        packed = read_packed_label(meta['seg_map_path'], 29)
        got_img = out['inputs'].numpy().transpose(1, 2, 0)
        got_gt = out['data_samples'].gt_sem_seg.data.numpy().view(
            np.uint16).transpose(1, 2, 0)
        if hand_side_from_name(meta['img_path']) == 'L':
            assert meta['unify_flip'] is True
            img, packed = np.fliplr(img), np.fliplr(packed)
        else:
            assert meta['unify_flip'] is False
        np.testing.assert_array_equal(got_img, img)
        np.testing.assert_array_equal(got_gt, packed)
        assert not np.array_equal(np.fliplr(img), img)  # can fail


def test_resize_before_label_loading(root):
    """Test pipelines load the label after resizing the image: both are
    still flipped (the image before the resize)."""
    ds = _build(root, unify_hands=True, pipeline=RESIZE_FIRST)
    ref = _build(root, pipeline=RESIZE_FIRST)
    left = [i for i in range(len(ds))
            if ds.get_data_info(i)['hand_side'] == 'L']
    assert left
    for i in left:
        out, plain = ds[i], ref[i]
        meta = out['data_samples'].metainfo
        img = cv2.imread(meta['img_path'], cv2.IMREAD_COLOR)
        expected = cv2.resize(np.fliplr(img), (64, 64),
                              interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(
            out['inputs'].numpy().transpose(1, 2, 0), expected)
        gt = out['data_samples'].gt_sem_seg.data.numpy()
        np.testing.assert_array_equal(
            gt, plain['data_samples'].gt_sem_seg.data.numpy()[..., ::-1])
        assert gt.shape[-2:] == (SIZE, SIZE)


def test_insert_unify_flip_and_transform():
    pipeline = insert_unify_flip(RESIZE_FIRST)
    assert [t['type'] for t in pipeline] == [
        'LoadImageFromFile', 'UnifyFlip', 'Resize',
        'LoadMultiLabelAnnotations', 'UnifyFlip', 'PackMultiLabelSegInputs'
    ]
    placed = [dict(type='LoadImageFromFile'), dict(type='UnifyFlip')]
    assert insert_unify_flip(placed) == placed  # the user's placement kept
    t = TRANSFORMS.build(dict(type='UnifyFlip'))
    img = np.arange(6).reshape(2, 3)
    r = t(dict(img=img.copy(), unify_flip=True))
    assert r['img'].tolist() == [[2, 1, 0], [5, 4, 3]]
    r = t(r)  # each key flips once
    assert r['img'].tolist() == [[2, 1, 0], [5, 4, 3]]
    r['gt_seg_map'] = img.copy()  # a later loader's map
    r['seg_fields'] = ['gt_seg_map']
    assert t(r)['gt_seg_map'].tolist() == [[2, 1, 0], [5, 4, 3]]
    assert t(dict(img=img.copy()))['img'].tolist() == img.tolist()
    assert unflip_array(img, dict(unify_flip=True)).tolist() == [
        [2, 1, 0], [5, 4, 3]]
    assert unflip_array(img, {}) is img


def test_insert_unify_flip_meta_keys_and_tta():
    keys = ('img_path', 'ori_shape')
    out = insert_unify_flip([
        dict(type='LoadImageFromFile'),
        dict(type='PackMultiLabelSegInputs', meta_keys=keys),
    ])
    assert out[-1]['meta_keys'] == keys + ('unify_flip', )
    out = insert_unify_flip([dict(type='PackSegInputs')])  # mmseg's default
    assert 'unify_flip' in out[0]['meta_keys']
    assert 'img_path' in out[0]['meta_keys']
    tta = insert_unify_flip([
        dict(type='LoadImageFromFile'),
        dict(type='TestTimeAug', transforms=[
            [dict(type='Resize', scale=(8, 8))],
            [dict(type='LoadMultiLabelAnnotations')],
            [dict(type='PackMultiLabelSegInputs')],
        ]),
    ])
    assert [t['type'] for t in tta[2]['transforms'][1]] == [
        'LoadMultiLabelAnnotations', 'UnifyFlip'
    ]
    assert tta[1] == dict(type='UnifyFlip')


def test_meta_key_added_to_a_config_pipeline(root):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='PackMultiLabelSegInputs', meta_keys=('img_path', )),
    ]
    ds = _build(root, unify_hands=True, pipeline=pipeline)
    metas = [ds[i]['data_samples'].metainfo for i in range(len(ds))]
    assert sorted(m['unify_flip'] for m in metas) == [False, False, True,
                                                      True]


@pytest.mark.parametrize('transform, warns', [
    (dict(type='RandomFlip', prob=0.5), True),
    (dict(type='RandomFlip', prob=0.5, direction='vertical'), False),
    (dict(type='RandomFlip', prob=0.5, direction=['horizontal',
                                                  'vertical']), True),
    (dict(type='Albu', transforms=[dict(type='HorizontalFlip')]), True),
    (dict(type='Albu', transforms=[dict(type='GaussianBlur')]), False),
])
def test_horizontal_flip_in_the_pipeline_warns(root, monkeypatch, transform,
                                               warns):
    import mmseg_ext.datasets.hand_bone as module
    logged = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    _build(root, unify_hands=True, pipeline=LOAD_PACK[:1] + [transform])
    assert any('mirrors unified right hands' in m for m in logged) is warns


def test_unify_base_config():
    from mmengine import Config
    cfg = Config.fromfile(osp.join(
        osp.dirname(osp.dirname(osp.dirname(__file__))), 'configs', '_base_',
        'datasets', 'hand_bone_unify.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.type == 'HandBoneDataset'
        assert cfg[key].dataset.unify_hands is True
    assert 'RandomFlip' not in [
        t['type'] for t in cfg.train_dataloader.dataset.pipeline]


hypothesis = pytest.importorskip('hypothesis')
st = hypothesis.strategies
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.sampled_from(['L', 'R', 'l', 'right', 'Left '])))
def test_hand_side_json_round_trip(tmp_path_factory, mapping):
    from mmseg_ext.datasets.hand_bone import load_hand_side_mapping
    path = str(tmp_path_factory.mktemp('sides') / 'sides.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(mapping, f)
    expected = {k: 'L' if v.strip().lower() in ('l', 'left') else 'R'
                for k, v in mapping.items()}
    assert load_hand_side_mapping(path) == expected


@hypothesis.settings(max_examples=80, deadline=None)
@hypothesis.given(st.one_of(
    json_values.map(json.dumps).map(str.encode),
    st.binary(max_size=24)))
def test_hand_side_json_bad_input_names_the_file(tmp_path_factory, raw):
    from mmseg_ext.datasets.hand_bone import load_hand_side_mapping
    path = str(tmp_path_factory.mktemp('sides') / 'sides.json')
    with open(path, 'wb') as f:
        f.write(raw)
    try:
        sides = load_hand_side_mapping(path)
    except ValueError as err:
        assert path in str(err)
    else:  # only an object of sides is accepted
        assert set(sides.values()) <= {'L', 'R'}
