# Copyright (c) mmseg_ext contributors. All rights reserved.
"""ROI specialist tool: the carpal-crop dataset is read by HandBoneDataset
with the same folds, and pasting a tiny random-init specialist into saved
general predictions changes only the carpal classes inside the box."""
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import (HAND_BONE_CLASSES,
                                                     generate_hand_bone)
from mmseg_ext.utils.multilabel import (pack_multilabel, read_packed_label,
                                        unpack_multilabel, write_packed_label)
from mmseg_ext.utils.roi import CARPAL_CLASS_IDS, roi_from_masks

C = len(HAND_BONE_CLASSES)
TINY = 'tiny_segformer_handbone-64x64.py'
CARPALS = list(CARPAL_CLASS_IDS)
OTHERS = [k for k in range(C) if k not in CARPALS]


def _load_tool(tools):
    path = osp.join(tools.repo_root, 'tools', 'roi_specialist.py')
    spec = importlib.util.spec_from_file_location('tool_roi_specialist',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def hand_bone_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('roi') / 'data')
    generate_hand_bone(root, num_train_ids=2, num_test_ids=0, size=128,
                       seed=3)
    convert_hand_bone(root, num_folds=2, show_progress=False)
    return root


@pytest.fixture(scope='module')
def roi_root(tools, hand_bone_root, tmp_path_factory):
    dst = str(tmp_path_factory.mktemp('roi_data') / 'carpal')
    _load_tool(tools).main(['make-dataset', hand_bone_root, dst, '--margin',
                            '4', '--jitter', '0.1', '--seed', '1'])
    return dst


def test_make_dataset_crops_images_and_labels(hand_bone_root, roi_root):
    with open(osp.join(roi_root, 'roi_boxes.json')) as f:
        info = json.load(f)
    assert info['skipped'] == [] and len(info['boxes']) == 4
    for rel, (x1, y1, x2, y2) in info['boxes'].items():
        src_img = cv2.imread(
            osp.join(hand_bone_root, 'train', 'DCM', rel),
            cv2.IMREAD_UNCHANGED)
        img = cv2.imread(
            osp.join(roi_root, 'train', 'DCM', rel), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(img, src_img[y1:y2, x1:x2])
        src = unpack_multilabel(
            read_packed_label(
                osp.join(hand_bone_root, 'train', 'packed_labels', rel), C),
            C)
        label = unpack_multilabel(
            read_packed_label(
                osp.join(roi_root, 'train', 'packed_labels', rel), C), C)
        np.testing.assert_array_equal(label, src[:, y1:y2, x1:x2])
        # the jittered box still holds every carpal pixel (and the margin
        # is at least 4 px before jitter can only widen past the tight box)
        tx1, ty1, tx2, ty2 = roi_from_masks(src, CARPALS, margin=0)
        assert x1 <= tx1 and y1 <= ty1 and x2 >= tx2 and y2 >= ty2
        assert label[CARPALS].sum() == src[CARPALS].sum() > 0
        assert (x2 - x1) < 128 and (y2 - y1) < 128


def test_make_dataset_readable_by_hand_bone_dataset(hand_bone_root,
                                                    roi_root):
    init_default_scope('mmseg')
    for split in ('train', 'val'):
        src = DATASETS.build(dict(type='HandBoneDataset',
                                  data_root=hand_bone_root, split=split,
                                  fold=1, pipeline=[]))
        roi = DATASETS.build(dict(type='HandBoneDataset', data_root=roi_root,
                                  split=split, fold=1, pipeline=[]))
        assert [osp.relpath(i['img_path'], hand_bone_root)
                for i in src.load_data_list()] == \
            [osp.relpath(i['img_path'], roi_root)
             for i in roi.load_data_list()]
    dataset = DATASETS.build(
        dict(type='HandBoneDataset', data_root=roi_root, split='all',
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadMultiLabelAnnotations')]))
    sample = dataset[0]
    assert sample['num_classes'] == C
    assert sample['img'].shape[:2] == sample['gt_seg_map'].shape[:2]


def test_make_dataset_errors(tools, hand_bone_root, tmp_path):
    tool = _load_tool(tools)
    with pytest.raises(ValueError, match='`dst` should differ'):
        tool.make_dataset(hand_bone_root, hand_bone_root)
    with pytest.raises(FileNotFoundError, match='all.txt does not exist'):
        tool.make_dataset(str(tmp_path), str(tmp_path / 'out'))


@pytest.fixture(scope='module')
def specialist_ckpt(tools, tmp_path_factory):
    """A tiny random-init specialist (29 classes) saved as a checkpoint."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(tools.config_dir, TINY))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = str(tmp_path_factory.mktemp('roi_ckpt') / 'specialist.pth')
    torch.save(
        dict(state_dict=model.state_dict(),
             meta=dict(dataset_meta=dict(classes=HAND_BONE_CLASSES))), path)
    return path


def test_paste_changes_only_carpals_in_box(tools, hand_bone_root,
                                           specialist_ckpt, tmp_path):
    tool = _load_tool(tools)
    img_dir = osp.join(hand_bone_root, 'train', 'DCM')
    label_dir = osp.join(hand_bone_root, 'train', 'packed_labels')
    rels = sorted(
        osp.relpath(p, label_dir)
        for p in glob.glob(osp.join(label_dir, '*', '*.png')))
    # the general predictions: flat {image_name}.png, as --save-pred-dir
    # writes them; the ground truth here, one of them without carpals
    pred_dir = str(tmp_path / 'general')
    general = {}
    for i, rel in enumerate(rels[:3]):
        masks = unpack_multilabel(
            read_packed_label(osp.join(label_dir, rel), C), C) == 1
        if i == 2:
            masks[CARPALS] = False
        name = osp.basename(rel)
        write_packed_label(osp.join(pred_dir, name), pack_multilabel(masks))
        general[name] = masks
    out_dir = str(tmp_path / 'pasted')
    tool.main(['paste', pred_dir, osp.join(tools.config_dir, TINY),
               specialist_ckpt, '--img-dir', img_dir, '--out-dir', out_dir,
               '--margin', '0.1'])
    assert sorted(os.listdir(out_dir)) == sorted(general)
    changed = 0
    for name, masks in general.items():
        packed = read_packed_label(osp.join(out_dir, name), C)
        out = unpack_multilabel(packed, C)
        assert out.shape == masks.shape and set(np.unique(out)) <= {0, 1}
        out = out == 1
        np.testing.assert_array_equal(out[OTHERS], masks[OTHERS])
        box = roi_from_masks(masks, CARPALS, margin=0.1)
        if box is None:  # no carpal: copied unchanged
            np.testing.assert_array_equal(out, masks)
            continue
        x1, y1, x2, y2 = box
        outside = np.ones(masks.shape[1:], bool)
        outside[y1:y2, x1:x2] = False
        np.testing.assert_array_equal(out[CARPALS][:, outside],
                                      masks[CARPALS][:, outside])
        changed += int((out[CARPALS] != masks[CARPALS]).any())
    assert changed >= 1  # a random specialist does not reproduce the GT


def test_paste_errors(tools, hand_bone_root, specialist_ckpt, tmp_path):
    tool = _load_tool(tools)
    config = osp.join(tools.config_dir, TINY)
    with pytest.raises(FileNotFoundError, match='no packed prediction'):
        tool.paste_predictions(str(tmp_path), config, specialist_ckpt,
                               str(tmp_path), str(tmp_path / 'o'))
    write_packed_label(str(tmp_path / 'p' / 'unknown.png'),
                       pack_multilabel(np.zeros((C, 8, 8), bool)))
    with pytest.raises(FileNotFoundError, match='have no image'):
        tool.paste_predictions(
            str(tmp_path / 'p'), config, specialist_ckpt,
            osp.join(hand_bone_root, 'train', 'DCM'), str(tmp_path / 'o'))
    with pytest.raises(ValueError, match='should predict all 29'):
        tool._specialist_rows(5, CARPALS)
    assert tool._specialist_rows(8, CARPALS) == list(range(8))
    assert tool._specialist_rows(29, CARPALS) == CARPALS


def test_roi_config():
    cfg = Config.fromfile(
        osp.join(osp.dirname(osp.dirname(osp.dirname(__file__))), 'configs',
                 'segformer', 'segformer_mit-b0_1xb8-20k_carpal-roi-512x512'
                 '.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.type == 'HandBoneDataset'
        assert cfg[key].dataset.data_root == 'data/hand_bone_carpal_roi'
    assert cfg.model.decode_head.head.num_classes == C
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    assert cfg.test_pipeline[1].scale == (512, 512)


def test_paste_two_processes_match_one(tools, hand_bone_root,
                                       specialist_ckpt, tmp_path):
    """``dist_tool.sh tools/roi_specialist.py 2 paste``: the predictions are
    sharded over 2 CPU processes; the files equal a one-process run."""
    tool = _load_tool(tools)
    label_dir = osp.join(hand_bone_root, 'train', 'packed_labels')
    pred_dir = str(tmp_path / 'general')
    os.makedirs(pred_dir)
    for path in sorted(glob.glob(osp.join(label_dir, '*', '*.png')))[:3]:
        shutil.copy(path, pred_dir)  # flat, as --save-pred-dir writes
    args = ['paste', pred_dir, osp.join(tools.config_dir, TINY),
            specialist_ckpt, '--img-dir',
            osp.join(hand_bone_root, 'train', 'DCM')]
    tool.main(args + ['--out-dir', str(tmp_path / 'one')])
    env = tools.env(PYTHON=tools.python, PORT=tools.free_port())
    proc = tools.run(['bash', 'tools/dist_tool.sh', 'tools/roi_specialist.py',
                      '2', *args, '--out-dir', str(tmp_path / 'two')],
                     env=env, timeout=180)
    assert proc.returncode == 0, tools.describe(proc)
    assert proc.stdout.count('pasted the specialist into') == 1
    names = sorted(os.listdir(tmp_path / 'one'))
    assert len(names) == 3 and sorted(os.listdir(tmp_path / 'two')) == names
    for name in names:
        assert (tmp_path / 'one' / name).read_bytes() == \
            (tmp_path / 'two' / name).read_bytes()


@pytest.fixture(scope='module')
def oracle_ckpt(tools, tmp_path_factory):
    """The hand-side oracle (hand_side_oracle.py) of a unify-hands config."""
    from hand_side_oracle import init_identity_head
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(tools.config_dir, ORACLE))
    model = MODELS.build(cfg.model)
    init_identity_head(model)
    path = str(tmp_path_factory.mktemp('roi_oracle') / 'oracle.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(
        dataset_meta=dict(classes=HAND_BONE_CLASSES))), path)
    return path


ORACLE = 'tiny_oracle_handbone-unify.py'


@pytest.mark.parametrize('unify', [True, False])
def test_paste_unified_specialist_round_trip(tools, hand_bone_root,
                                             oracle_ckpt, tmp_path, unify):
    """A specialist trained on unified hands sees a left hand's crop flipped
    and its prediction is pasted back flipped: the paste is the oracle's
    prediction of the crop in the original orientation, for both sides."""
    from hand_side_oracle import oracle_masks
    from mmseg_ext.datasets.hand_bone import hand_side_from_name
    tool = _load_tool(tools)
    img_dir = osp.join(hand_bone_root, 'train', 'DCM')
    label_dir = osp.join(hand_bone_root, 'train', 'packed_labels')
    rels = sorted(
        osp.relpath(p, label_dir)
        for p in glob.glob(osp.join(label_dir, '*', '*.png')))[:2]
    assert sorted(hand_side_from_name(r) for r in rels) == ['L', 'R']
    pred_dir = str(tmp_path / 'general')
    general = {}
    for rel in rels:
        masks = unpack_multilabel(
            read_packed_label(osp.join(label_dir, rel), C), C) == 1
        write_packed_label(osp.join(pred_dir, osp.basename(rel)),
                           pack_multilabel(masks))
        general[rel] = masks
    config = osp.join(tools.config_dir, ORACLE)
    if not unify:
        cfg = Config.fromfile(config)
        cfg.test_dataloader.dataset.unify_hands = False
        cfg.train_dataloader.dataset.unify_hands = False
        config = str(tmp_path / 'plain.py')
        cfg.dump(config)
    out_dir = str(tmp_path / 'pasted')
    tool.paste_predictions(pred_dir, config, oracle_ckpt, img_dir, out_dir,
                           margin=0.1)
    for rel, masks in general.items():
        out = unpack_multilabel(read_packed_label(
            osp.join(out_dir, osp.basename(rel)), C), C) == 1
        x1, y1, x2, y2 = roi_from_masks(masks, CARPALS, margin=0.1)
        crop = cv2.imread(osp.join(img_dir, rel), cv2.IMREAD_COLOR)[
            y1:y2, x1:x2]
        left = hand_side_from_name(rel) == 'L'
        expected = oracle_masks(crop, flipped=unify and left)[CARPALS]
        np.testing.assert_array_equal(out[CARPALS][:, y1:y2, x1:x2],
                                      expected)
        if left:  # the test can fail: the two orientations differ
            assert not np.array_equal(
                expected, oracle_masks(crop, flipped=not unify)[CARPALS])
        np.testing.assert_array_equal(out[OTHERS], masks[OTHERS])
