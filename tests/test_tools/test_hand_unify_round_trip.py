# Copyright (c) mmseg_ext contributors. All rights reserved.
"""``HandBoneDataset(unify_hands=True)`` round trips on every prediction
path: test metrics, submission CSV and saved masks, ensemble probabilities
and masks, pseudo-labels (and the pseudo-label dataset reading them).

The model is the hand-side oracle (``hand_side_oracle.py``): its
prediction depends on the orientation it is given, so each output is
compared pixel for pixel with the oracle's prediction of the flipped left
hand (flipped back) and of the unflipped right hand, in the original
orientation. The tools run in process (their ``main(argv)``)."""
import csv
import glob
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from hand_side_oracle import init_identity_head, oracle_masks
from mmengine import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS

from mmseg_ext.apis.ensemble import load_probs
from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import (HAND_BONE_CLASSES,
                                                     generate_hand_bone)
from mmseg_ext.datasets.hand_bone import hand_side_from_name
from mmseg_ext.evaluation.metrics.multilabel_dice_metric import \
    dice_iou_scores
from mmseg_ext.utils.multilabel import read_packed_label, unpack_multilabel
from mmseg_ext.utils.rle import rle_encode

C = len(HAND_BONE_CLASSES)
SIZE = 128
ORACLE = 'tiny_oracle_handbone-unify.py'


def _load_tool(tools, rel):
    path = osp.join(tools.repo_root, rel)
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.basename(rel)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def setup(tools, tmp_path_factory):
    """Data (2 labelled + 1 test patient, an R and an L hand each) and the
    oracle's checkpoint."""
    base = tmp_path_factory.mktemp('unify_rt')
    root = str(base / 'data')
    generate_hand_bone(root, num_train_ids=2, num_test_ids=1, size=SIZE)
    convert_hand_bone(root, num_folds=2, show_progress=False)
    init_default_scope('mmseg')
    config = osp.join(tools.config_dir, ORACLE)
    model = MODELS.build(Config.fromfile(config).model)
    init_identity_head(model)
    ckpt = str(base / 'oracle.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(
        dataset_meta=dict(classes=HAND_BONE_CLASSES))), ckpt)
    return dict(root=root, base=base, config=config, ckpt=ckpt)


def _expected(img_path):
    """The oracle's prediction in the original orientation, and the one a
    missing (or doubled) flip would give instead."""
    img = cv2.imread(img_path, cv2.IMREAD_COLOR)
    left = hand_side_from_name(img_path) == 'L'
    right, wrong = oracle_masks(img, left), oracle_masks(img, not left)
    assert not np.array_equal(right, wrong)  # the tests can fail
    return right


def _test_images(root):
    return sorted(glob.glob(osp.join(root, 'test', 'DCM', '*', '*.png')))


def test_test_metric_compares_like_with_like(setup):
    """tools/test.py's path (Runner.test): the Dice of the original-
    orientation prediction against the original ground truth."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(setup['config'])
    root = setup['root']
    cfg.test_dataloader.dataset.data_root = root
    cfg.test_dataloader.dataset.split = 'all'
    cfg.work_dir = str(setup['base'] / 'wd_test')
    cfg.load_from = setup['ckpt']
    cfg.default_hooks.pop('visualization', None)
    metrics = Runner.from_cfg(cfg).test()
    ds = DATASETS.build(dict(type='HandBoneDataset', data_root=root,
                             split='all', pipeline=[]))
    counts, wrong = [], []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        gt = unpack_multilabel(read_packed_label(info['seg_map_path'], C), C)
        pred = _expected(info['img_path'])
        counts.append(_counts(pred, gt))
        wrong.append(_counts(pred[..., ::-1], gt))  # a flipped comparison
    dice = dice_iou_scores(np.stack(counts))[0].mean(0).mean()
    assert metrics['mDice'] == pytest.approx(dice, abs=1e-9)
    assert dice != pytest.approx(
        dice_iou_scores(np.stack(wrong))[0].mean(0).mean(), abs=1e-3)


def _counts(pred, gt):
    pred, gt = pred.astype(bool), gt == 1
    return np.stack([(pred & gt).sum((1, 2)), pred.sum((1, 2)),
                     gt.sum((1, 2))])


def test_submission_csv_and_saved_masks(setup, tools):
    tool = _load_tool(tools, 'tools/hand_bone_submission.py')
    out = str(setup['base'] / 'submission.csv')
    preds = str(setup['base'] / 'sub_preds')
    tool.main([setup['config'], setup['ckpt'], '--out', out, '--data-root',
               setup['root'], '--save-pred-dir', preds, '--work-dir',
               str(setup['base'] / 'wd_sub')])
    with open(out, newline='') as f:
        rows = list(csv.reader(f))[1:]
    by_name = {}
    for name, cls, rle in rows:
        by_name.setdefault(name, {})[cls] = rle
    images = _test_images(setup['root'])
    assert sorted(hand_side_from_name(p) for p in images) == ['L', 'R']
    for path in images:
        expected = _expected(path)
        name = osp.basename(path)
        assert by_name[name] == {
            c: rle_encode(expected[k])
            for k, c in enumerate(HAND_BONE_CLASSES)
        }
        saved = unpack_multilabel(
            read_packed_label(osp.join(preds, name), C), C)
        np.testing.assert_array_equal(saved, expected)


@pytest.fixture(scope='module')
def ensemble_run(setup, tools):
    tool = _load_tool(tools, 'tools/ensemble.py')
    out_dir = str(setup['base'] / 'ens')
    probs = str(setup['base'] / 'ens_probs')
    csv_out = str(setup['base'] / 'ens.csv')
    tool.main([
        '--member', setup['config'], setup['ckpt'], '--split', 'test',
        '--cfg-options', f'test_dataloader.dataset.data_root={setup["root"]}',
        'test_dataloader.dataset.split=test', '--out-dir', out_dir,
        '--save-probs', probs, '--submission', 'hand_bone', '--out', csv_out
    ])
    (member, ) = glob.glob(osp.join(probs, '*'))
    return dict(out_dir=out_dir, probs=member, csv=csv_out)


def test_ensemble_probs_and_masks_in_original_orientation(setup,
                                                          ensemble_run):
    for path in _test_images(setup['root']):
        expected = _expected(path)
        stem = osp.splitext(osp.basename(path))[0]
        probs = load_probs(osp.join(ensemble_run['probs'], stem + '.npy'))
        np.testing.assert_array_equal(probs > 127, expected)
        masks = unpack_multilabel(read_packed_label(
            osp.join(ensemble_run['out_dir'], stem + '.png'), C), C)
        np.testing.assert_array_equal(masks, expected)


def test_ensemble_from_saved_probs_does_not_flip_again(setup, tools,
                                                       ensemble_run,
                                                       tmp_path):
    """Saved probabilities are original: a --prob-dirs run writes the same
    masks (no second flip)."""
    tool = _load_tool(tools, 'tools/ensemble.py')
    out_dir = str(tmp_path / 'again')
    tool.main(['--prob-dirs', ensemble_run['probs'], '--task', 'hand_bone',
               '--split', 'test', '--out-dir', out_dir])
    for path in _test_images(setup['root']):
        stem = osp.splitext(osp.basename(path))[0]
        masks = unpack_multilabel(read_packed_label(
            osp.join(out_dir, stem + '.png'), C), C)
        np.testing.assert_array_equal(masks, _expected(path))


def test_pseudo_labels_original_and_reunified(setup, tools, ensemble_run):
    """Pseudo-labels are written in the original orientation; the
    pseudo-label dataset with unify_hands flips a left hand's again, like
    its image."""
    tool = _load_tool(tools, 'tools/pseudo_label.py')
    out = str(setup['base'] / 'pseudo')
    tool.main(['--task', 'hand_bone', '--prob-dirs', ensemble_run['probs'],
               '--images-dir', osp.join(setup['root'], 'test', 'DCM'),
               '--out-dir', out, '--pos', '0.9', '--neg', '0.1',
               '--no-progress'])
    ds = DATASETS.build(dict(
        type='HandBoneDataset', data_root=out, split='all',
        unify_hands=True, pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadMultiLabelAnnotations'),
            dict(type='PackMultiLabelSegInputs')
        ]))
    assert len(ds) == 2
    for i in range(len(ds)):
        sample = ds[i]
        meta = sample['data_samples'].metainfo
        expected = _expected(meta['img_path'])
        on_disk = unpack_multilabel(
            read_packed_label(meta['seg_map_path'], C), C)
        np.testing.assert_array_equal(on_disk, expected)
        loaded = unpack_multilabel(
            sample['data_samples'].gt_sem_seg.data.numpy().view(
                np.uint16).transpose(1, 2, 0), C)
        img = sample['inputs'].numpy().transpose(1, 2, 0)
        raw = cv2.imread(meta['img_path'], cv2.IMREAD_COLOR)
        if hand_side_from_name(meta['img_path']) == 'L':
            expected, raw = expected[..., ::-1], raw[:, ::-1]
        np.testing.assert_array_equal(loaded, expected)
        np.testing.assert_array_equal(img, raw)
