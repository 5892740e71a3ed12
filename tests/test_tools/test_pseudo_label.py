# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Pseudo-labels (``mmseg_ext/apis/pseudo_label.py``,
``tools/pseudo_label.py``) on tiny generated hand-bone and building
datasets with hand-made probability maps of two ensemble members.

Probabilities (uint8, ``round(255 p)``) of both members: 250 (0.98) on a
class's square, 5 (0.02) elsewhere; on an *unsure stripe* member A says 255
and member B says 0, so the soft vote is 0.5: unsure.
"""
import csv
import importlib.util
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from mmseg_ext.apis.ensemble import save_probs
from mmseg_ext.apis.pseudo_label import (list_unlabelled_images,
                                         make_pseudo_labels, threshold_probs)
from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.building import generate_buildings
from mmseg_ext.datasets.generators.hand_bone import generate_hand_bone
from mmseg_ext.utils.multilabel import unpack_multilabel
from mmseg_ext.utils.rle import rle_decode

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
C = 29
SIZE = 128
STRIPE = slice(10, 20)  # unsure rows (every class of a kept image)
PSEUDO_CONFIG = osp.join(
    ROOT, 'configs', 'segformer',
    'segformer_mit-b0_1xb8-20k_pseudo-handbone-512x512.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'pseudo_label_tool', osp.join(ROOT, 'tools', 'pseudo_label.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _member_probs(num_classes, h, w, index, unsure_rows):
    """Probabilities of members A and B and the expected positive masks."""
    a = np.full((num_classes, h, w), 5, np.uint8)
    positive = np.zeros((num_classes, h, w), bool)
    for k in range(num_classes):
        y, x = (5 * k + 3 * index) % (h - 16), (7 * k + index) % (w - 16)
        a[k, y:y + 12, x:x + 12] = 250
        positive[k, y:y + 12, x:x + 12] = True
    b = a.copy()
    a[:, unsure_rows] = 255
    b[:, unsure_rows] = 0
    positive[:, unsure_rows] = False
    return a, b, positive


@pytest.fixture(scope='module')
def hand_bone(tmp_path_factory):
    """Two labelled and two unlabelled patients (4 test X-rays); the last
    test image is unsure on half its rows."""
    base = tmp_path_factory.mktemp('pseudo_hb')
    root = str(base / 'hand_bone')
    info = generate_hand_bone(root, num_train_ids=2, num_test_ids=2,
                              size=SIZE, seed=3)
    convert_hand_bone(root, num_folds=2, show_progress=False)
    probs = [str(base / 'probs_a'), str(base / 'probs_b')]
    expected = {}
    for i, rel in enumerate(info['test']):
        stem = osp.splitext(osp.basename(rel))[0]
        rows = slice(0, SIZE // 2) if i == len(info['test']) - 1 else STRIPE
        a, b, positive = _member_probs(C, SIZE, SIZE, i, rows)
        save_probs(osp.join(probs[0], stem + '.npy'), a)
        save_probs(osp.join(probs[1], stem + '.npy'), b)
        expected[rel] = (positive, rows)
    return dict(root=root, base=base, probs=probs, test=info['test'],
                expected=expected)


@pytest.fixture(scope='module')
def hand_bone_pseudo(hand_bone):
    out = str(hand_bone['base'] / 'pseudo')
    manifest = make_pseudo_labels(
        'hand_bone', hand_bone['probs'],
        osp.join(hand_bone['root'], 'test', 'DCM'), out, pos=0.9, neg=0.1,
        max_unsure=0.3, num_folds=2, show_progress=False)
    return out, manifest


def test_threshold_probs_exact():
    p = np.array([[[0.95, 0.9, 0.5, 0.1, 0.0]]], np.float32)
    positive, unsure = threshold_probs(p, 0.9, 0.1)
    assert positive.tolist() == [[[True, True, False, False, False]]]
    assert unsure.tolist() == [[[False, False, True, False, False]]]
    with pytest.raises(ValueError, match='`neg` should be below `pos`'):
        threshold_probs(p, 0.5, 0.5)
    with pytest.raises(ValueError, match='`pos` should be a number in'):
        threshold_probs(p, 1.5, 0.1)


def test_hand_bone_dataset_reads_pseudo_labels(hand_bone, hand_bone_pseudo):
    out, manifest = hand_bone_pseudo
    kept = sorted(hand_bone['test'])[:-1]
    skipped = sorted(hand_bone['test'])[-1]
    assert manifest['num_images'] == 4 and manifest['num_kept'] == 3
    assert [e['rel'] for e in manifest['kept']] == kept
    assert manifest['skipped'][0]['unsure_fraction'] == pytest.approx(0.5)
    assert 'max_unsure 0.3' in manifest['skipped'][0]['reason']
    for entry in manifest['kept']:
        assert entry['unsure_fraction'] == pytest.approx(10 / SIZE)
    with open(osp.join(out, 'manifest.json'), encoding='utf-8') as f:
        assert json.load(f)['num_kept'] == 3
    assert not osp.exists(osp.join(out, 'train', 'packed_labels', skipped))
    for name in ('all', 'fold0_train', 'fold1_train'):
        with open(osp.join(out, 'splits', name + '.txt')) as f:
            assert f.read().split() == kept
    assert osp.islink(osp.join(out, 'train', 'DCM', kept[0]))

    init_default_scope('mmseg')
    for split, fold in (('all', None), ('train', 1)):
        dataset = DATASETS.build(
            dict(type='HandBoneDataset', data_root=out, split=split,
                 fold=fold,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LoadMultiLabelAnnotations')]))
        assert len(dataset) == 3
    for i, rel in enumerate(kept):
        sample = dataset[i]
        assert sample['img'].shape[:2] == (SIZE, SIZE)
        target = unpack_multilabel(sample['gt_seg_map'][..., :2], C)
        positive, rows = hand_bone['expected'][rel]
        assert (target[:, rows] == 255).all()  # unsure: ignored, all classes
        confident = np.ones(SIZE, bool)
        confident[rows] = False
        np.testing.assert_array_equal(target[:, confident],
                                      positive[:, confident].astype(np.uint8))
        assert target[:, confident].sum() > 0


def test_rerun_removes_files_of_images_no_longer_kept(hand_bone, tmp_path):
    out = str(tmp_path / 'pseudo')
    test_dir = osp.join(hand_bone['root'], 'test', 'DCM')
    first = make_pseudo_labels('hand_bone', hand_bone['probs'], test_dir,
                               out, max_unsure=1.0, show_progress=False,
                               copy_images=True)
    assert first['num_kept'] == 4
    last = sorted(hand_bone['test'])[-1]
    label = osp.join(out, 'train', 'packed_labels', last)
    assert osp.isfile(label)
    assert not osp.islink(osp.join(out, 'train', 'DCM', last))
    second = make_pseudo_labels('hand_bone', hand_bone['probs'], test_dir,
                                out, max_unsure=0.3, show_progress=False)
    assert second['num_kept'] == 3
    assert not osp.exists(label)
    assert not osp.exists(osp.join(out, 'train', 'DCM', last))


def test_pseudo_config_trains_on_train_and_pseudo(hand_bone,
                                                  hand_bone_pseudo):
    cfg = Config.fromfile(PSEUDO_CONFIG)
    assert cfg.data_root == 'data/hand_bone'
    assert cfg.pseudo_root == 'data/hand_bone_pseudo'
    train = cfg.train_dataloader.dataset
    assert train.type == 'ConcatDataset'
    assert [d.data_root for d in train.datasets] == [cfg.data_root,
                                                     cfg.pseudo_root]
    assert [d.split for d in train.datasets] == ['train', 'all']
    assert cfg.val_dataloader.dataset.data_root == cfg.data_root
    assert cfg.val_dataloader.dataset.split == 'val'
    labelled = [t.type for t in train.datasets[0].pipeline]
    assert labelled == [t.type for t in train.datasets[1].pipeline]
    assert 'LoadMultiLabelAnnotations' in labelled

    train.datasets[0].data_root = hand_bone['root']
    train.datasets[1].data_root = hand_bone_pseudo[0]
    for d in train.datasets:
        d.pipeline = [dict(type='LoadImageFromFile'),
                      dict(type='LoadMultiLabelAnnotations')]
    init_default_scope('mmseg')
    dataset = DATASETS.build(train)
    fold0 = DATASETS.build(
        dict(type='HandBoneDataset', data_root=hand_bone['root'],
             split='train', fold=0))
    assert len(dataset) == len(fold0) + 3
    assert dataset[len(dataset) - 1]['gt_seg_map'].dtype == np.uint16


def test_missing_probability_map_names_the_file(hand_bone, tmp_path):
    member = str(tmp_path / 'probs_b')
    shutil.copytree(hand_bone['probs'][1], member)
    stem = osp.splitext(osp.basename(sorted(hand_bone['test'])[1]))[0]
    os.remove(osp.join(member, stem + '.npy'))
    out = str(tmp_path / 'out')
    with pytest.raises(FileNotFoundError,
                       match=f'{stem}.npy of image .*{stem}.png'):
        make_pseudo_labels('hand_bone', [hand_bone['probs'][0], member],
                           osp.join(hand_bone['root'], 'test', 'DCM'), out,
                           show_progress=False)
    assert not osp.exists(out)  # checked before anything is written


def test_shape_mismatch_names_both_files(hand_bone, tmp_path):
    test_dir = osp.join(hand_bone['root'], 'test', 'DCM')
    stems = [osp.splitext(osp.basename(r))[0]
             for r in sorted(hand_bone['test'])]
    member = str(tmp_path / 'probs')
    for stem in stems:
        save_probs(osp.join(member, stem + '.npy'),
                   np.zeros((C, SIZE, SIZE - 1), np.uint8))
    with pytest.raises(ValueError, match=rf'{stems[0]}\.npy: probabilities '
                       rf'.*do not fit image .*{stems[0]}\.png'):
        make_pseudo_labels('hand_bone', member, test_dir,
                           str(tmp_path / 'out'), show_progress=False)
    for stem in stems:
        save_probs(osp.join(member, stem + '.npy'),
                   np.zeros((3, SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match=rf'{stems[0]}\.npy: hand-bone .*'
                       'C=29 classes, but got C=3'):
        make_pseudo_labels('hand_bone', member, test_dir,
                           str(tmp_path / 'out'), show_progress=False)


def test_refuses_a_foreign_output_folder(hand_bone, hand_bone_pseudo,
                                        building):
    with pytest.raises(FileExistsError, match='is not an earlier output'):
        make_pseudo_labels('hand_bone', hand_bone['probs'],
                           osp.join(hand_bone['root'], 'test', 'DCM'),
                           hand_bone['root'], show_progress=False)
    with pytest.raises(FileExistsError, match="holds 'hand_bone' pseudo"):
        make_pseudo_labels('building', building['probs'],
                           osp.join(building['root'], 'test.csv'),
                           hand_bone_pseudo[0], show_progress=False)


def _scale_sizes(node, factor):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('scale', 'crop_size', 'size') and \
                    isinstance(value, (tuple, list)) and len(value) == 2:
                node[key] = tuple(int(v * factor) for v in value)
            else:
                _scale_sizes(value, factor)
    elif isinstance(node, list):
        for value in node:
            _scale_sizes(value, factor)


def test_pseudo_config_runner_smoke(hand_bone, hand_bone_pseudo, tmp_path,
                                    monkeypatch):
    """A shrunk copy of the config trains 2 iterations on train + pseudo
    (ClassWeightHook counts over both) and validates on the labelled fold.
    """
    from mmengine.runner import Runner
    monkeypatch.setattr(Config, 'pretty_text',
                        property(lambda self: self.text))
    cfg = Config.fromfile(PSEUDO_CONFIG)
    datasets = cfg.train_dataloader.dataset.datasets
    datasets[0].data_root = hand_bone['root']
    datasets[1].data_root = hand_bone_pseudo[0]
    cfg.val_dataloader.dataset.data_root = hand_bone['root']
    cfg.test_dataloader = cfg.val_dataloader
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].update(num_workers=0, persistent_workers=False)
    _scale_sizes(cfg.train_dataloader, 1 / 8)
    _scale_sizes(cfg.val_dataloader, 1 / 8)
    _scale_sizes(cfg.model, 1 / 8)
    cfg.train_dataloader.batch_size = 2
    cfg.model.pretrained = None
    cfg.model.backbone.update(init_cfg=None, embed_dims=8,
                              num_layers=[1, 1, 1, 1],
                              num_heads=[1, 1, 1, 1], drop_path_rate=0.0)
    cfg.model.decode_head.head.update(in_channels=[8, 8, 8, 8], channels=8)
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False,
             begin=0, end=2)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert len(runner.train_dataloader.dataset) == 2 + 3  # fold0 + pseudo
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/loss'].current())
    assert 0.0 <= scalars['val/mDice'].current() <= 1.0


@pytest.fixture(scope='module')
def building(tmp_path_factory):
    """Three 32x32 test tiles; tile 1 has an unsure stripe, tile 2 is
    unsure everywhere."""
    base = tmp_path_factory.mktemp('pseudo_building')
    root = str(base / 'building')
    generate_buildings(root, num_train=0, num_test=3, train_size=32,
                       test_size=32, seed=1)
    items = list_unlabelled_images('building', osp.join(root, 'test.csv'))
    probs = str(base / 'probs')
    expected = {}
    for i, item in enumerate(items):
        p = np.full((1, 32, 32), 3, np.uint8)
        p[0, 4:12, 6:20] = 240
        if i == 1:
            p[0, 20:24] = 128  # unsure stripe: background in the CSV
        if i == 2:
            p[:] = 128
        save_probs(osp.join(probs, item['stem'] + '.npy'), p)
        expected[item['img_id']] = p[0] >= 230
    return dict(root=root, base=base, probs=probs, expected=expected)


def test_building_csv_read_by_dataset_and_cli(building, capsys):
    out = str(building['base'] / 'pseudo')
    tool = _load_tool()
    manifest = tool.main([
        '--task', 'building', '--prob-dirs', building['probs'],
        '--images-dir', osp.join(building['root'], 'test.csv'), '--out-dir',
        out, '--max-unsure', '0.5', '--no-progress'
    ])
    assert 'kept 2 of 3 images' in capsys.readouterr().out
    assert manifest['num_kept'] == 2
    assert manifest['skipped'][0]['stem'] == 'TEST_00002'
    assert manifest['kept'][1]['unsure_fraction'] == pytest.approx(4 / 32)
    with open(osp.join(out, 'train.csv'), newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['img_id', 'img_path', 'mask_rle']
    assert [r[0] for r in rows[1:]] == ['TEST_00000', 'TEST_00001']
    init_default_scope('mmseg')
    dataset = DATASETS.build(
        dict(type='BuildingRLEDataset', data_root=out, ann_file='train.csv',
             split='all',
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadRLEAnnotations')]))
    assert len(dataset) == 2
    for i in range(2):
        sample = dataset[i]
        expected = building['expected'][sample['img_id']]
        assert expected.sum() == 8 * 14
        np.testing.assert_array_equal(sample['gt_seg_map'],
                                      expected.astype(np.uint8))
        np.testing.assert_array_equal(
            rle_decode(rows[i + 1][2], (32, 32)), expected)

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        empty = building['base'] / 'empty_probs'
        empty.mkdir(exist_ok=True)
        tool.main(['--task', 'building', '--prob-dirs', str(empty),
                   '--images-dir', osp.join(building['root'], 'test.csv'),
                   '--out-dir', str(building['base'] / 'x')])
    assert exit_info.value.code == 2
    assert re.search('probability map .*TEST_00000.npy',
                     capsys.readouterr().err)


def test_building_max_unsure_and_nothing_kept(building, tmp_path):
    out = str(tmp_path / 'pseudo')
    manifest = make_pseudo_labels('building', building['probs'],
                                  osp.join(building['root'], 'test.csv'),
                                  out, max_unsure=0.0, show_progress=False)
    assert [e['img_id'] for e in manifest['kept']] == ['TEST_00000']
    assert manifest['num_skipped'] == 2
    # pos=1, neg=0: every pixel of these maps is unsure
    with pytest.raises(ValueError, match='no image kept'):
        make_pseudo_labels('building', building['probs'],
                           osp.join(building['root'], 'test.csv'), out,
                           pos=1.0, neg=0.0, max_unsure=0.5,
                           show_progress=False)
    with open(osp.join(out, 'manifest.json')) as f:
        assert json.load(f)['num_skipped'] == 3


def _dist_run(tools, args):
    """``bash tools/dist_pseudo_label.sh 2 ARGS`` (2 CPU processes, gloo)."""
    env = tools.env(with_test_hooks=False, PYTHON=tools.python,
                    PORT=tools.free_port())
    proc = tools.run(['bash', 'tools/dist_pseudo_label.sh', '2', *args,
                      '--no-progress'], env=env, timeout=180)
    assert proc.returncode == 0, tools.describe(proc)
    return proc


def _without_root(manifest):
    return {k: v for k, v in manifest.items() if k != 'dataset'}


def test_ddp_hand_bone_matches_single_process(hand_bone, hand_bone_pseudo,
                                              tools, tmp_path):
    """2 processes (images sharded 0, 2 | 1, 3): the same labels, split
    files and manifest as one process; rank 0 alone prints."""
    single, single_manifest = hand_bone_pseudo
    out = str(tmp_path / 'pseudo')
    proc = _dist_run(tools, [
        '--task', 'hand_bone', '--prob-dirs', *hand_bone['probs'],
        '--images-dir', osp.join(hand_bone['root'], 'test', 'DCM'),
        '--out-dir', out, '--pos', '0.9', '--neg', '0.1', '--max-unsure',
        '0.3', '--num-folds', '2'
    ])
    assert proc.stdout.count('kept 3 of 4 images') == 1
    with open(osp.join(out, 'manifest.json'), encoding='utf-8') as f:
        manifest = json.load(f)
    assert _without_root(manifest) == _without_root(single_manifest)
    for name in ('all', 'fold0_train', 'fold1_train'):
        with open(osp.join(out, 'splits', name + '.txt')) as f, \
                open(osp.join(single, 'splits', name + '.txt')) as g:
            assert f.read() == g.read()
    for entry in manifest['kept']:
        with open(osp.join(out, 'train', 'packed_labels', entry['rel']),
                  'rb') as f, open(osp.join(single, 'train', 'packed_labels',
                                            entry['rel']), 'rb') as g:
            assert f.read() == g.read()


def test_ddp_building_csv_matches_single_process(building, tools,
                                                 tmp_path):
    single = str(tmp_path / 'single')
    make_pseudo_labels('building', building['probs'],
                       osp.join(building['root'], 'test.csv'), single,
                       max_unsure=0.5, show_progress=False)
    out = str(tmp_path / 'ddp')
    _dist_run(tools, [
        '--task', 'building', '--prob-dirs', building['probs'],
        '--images-dir', osp.join(building['root'], 'test.csv'),
        '--out-dir', out, '--max-unsure', '0.5'
    ])
    with open(osp.join(out, 'train.csv')) as f, \
            open(osp.join(single, 'train.csv')) as g:
        assert f.read() == g.read()
    assert sorted(os.listdir(osp.join(out, 'train_img'))) == sorted(
        os.listdir(osp.join(single, 'train_img')))
