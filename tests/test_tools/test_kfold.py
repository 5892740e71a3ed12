# Copyright (c) mmseg_ext contributors. All rights reserved.
"""K-fold tool: fold configs, two folds trained in subprocesses, collection
of the out-of-fold scores (also from hand-written per-class JSONs)."""
import copy
import csv
import os
import json
import os.path as osp

import cv2
import pytest
from mmengine import Config

from mmseg_ext.apis.kfold import (OOF_JSON, collect_kfold, find_checkpoint,
                                  make_fold_config, set_fold)
from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import (HAND_BONE_CLASSES,
                                                     generate_hand_bone)
from mmseg_ext.utils.io import dump_json_atomic

KFOLD_CFG = 'tiny_segformer_handbone-kfold-64x64.py'


@pytest.fixture(scope='module')
def hand_bone_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('kfold') / 'data')
    generate_hand_bone(root, num_train_ids=3, num_test_ids=0, size=128,
                       seed=1)
    convert_hand_bone(root, num_folds=2, show_progress=False)
    return root


def _tiny_cfg(tools):
    return osp.join(tools.config_dir, KFOLD_CFG)


def test_make_fold_config_sets_fold_and_json(tools, tmp_path):
    cfg = Config.fromfile(_tiny_cfg(tools))
    fold_cfg = make_fold_config(cfg, 1, 3, str(tmp_path / 'fold1'))
    assert fold_cfg.train_dataloader.dataset.fold == 1
    assert fold_cfg.val_dataloader.dataset.fold == 1
    assert fold_cfg.test_dataloader.dataset.fold == 1
    assert fold_cfg.val_evaluator.per_class_json == \
        str(tmp_path / 'fold1' / OOF_JSON)
    assert fold_cfg.work_dir == str(tmp_path / 'fold1')
    assert cfg.train_dataloader.dataset.fold == 0  # base config unchanged
    assert 'num_folds' not in fold_cfg.train_dataloader.dataset


def test_set_fold_buildings_and_wrappers():
    ds = dict(type='RepeatDataset', times=2,
              dataset=dict(type='BuildingRLEDataset', fold=0, num_folds=5))
    assert set_fold(ds, 2, 4) == 1
    assert ds['dataset']['fold'] == 2 and ds['dataset']['num_folds'] == 4
    concat = dict(type='ConcatDataset', datasets=[
        dict(type='HandBoneDataset'), dict(type='HandBoneDataset')])
    assert set_fold(concat, 1, 2) == 2
    assert [d['fold'] for d in concat['datasets']] == [1, 1]
    assert set_fold(dict(type='ADE20KDataset'), 0, 2) == 0
    with pytest.raises(ValueError, match='`fold` should be'):
        set_fold(ds, 4, 4)
    with pytest.raises(ValueError, match='`num_folds` should be'):
        set_fold(ds, 0, 1)


def test_make_fold_config_errors_and_warning(tools, tmp_path):
    cfg = Config.fromfile(_tiny_cfg(tools))
    bad = copy.deepcopy(cfg)
    bad.train_dataloader.dataset = dict(type='ADE20KDataset')
    with pytest.raises(ValueError, match='with a `fold` argument'):
        make_fold_config(bad, 0, 2, str(tmp_path))
    no_val = copy.deepcopy(cfg)
    no_val.val_dataloader = None
    with pytest.raises(ValueError, match='`val_dataloader` should be set'):
        make_fold_config(no_val, 0, 2, str(tmp_path))
    other = copy.deepcopy(cfg)
    other.val_evaluator = dict(type='IoUMetric')
    with pytest.warns(UserWarning, match='writes no per-class JSON'):
        fold_cfg = make_fold_config(other, 0, 2, str(tmp_path))
    assert 'per_class_json' not in fold_cfg.val_evaluator


def _fake_fold(out_dir, k, dice, iou, ckpt=True):
    work_dir = osp.join(out_dir, f'fold{k}')
    dump_json_atomic(
        dict(classes=['a', 'b', 'c'], dice=dice, iou=iou, mDice=0.0,
             mIoU=0.0, num_images=2, eps=1e-4),
        osp.join(work_dir, OOF_JSON))
    with open(osp.join(work_dir, 'config.py'), 'w') as f:
        f.write('x = 1\n')
    if ckpt:
        for name in ('iter_2.pth', 'iter_10.pth', 'best_mDice_iter_2.pth'):
            open(osp.join(work_dir, name), 'wb').close()


def test_collect_on_hand_written_jsons(tmp_path):
    out = str(tmp_path)
    _fake_fold(out, 0, [0.5, 1.0, None], [0.25, 1.0, None])
    _fake_fold(out, 1, [0.7, 0.0, 0.4], [0.5, 0.0, 0.2])
    result = collect_kfold(out, checkpoint='last')
    scores = result['scores']
    assert scores['folds'] == [0, 1]
    assert scores['mean_dice'] == pytest.approx([0.6, 0.5, 0.4])
    assert scores['mean_iou'] == pytest.approx([0.375, 0.5, 0.2])
    assert scores['mDice'] == pytest.approx(0.5)
    assert scores['dice'][0][2] is None
    with open(osp.join(out, 'oof_scores.json')) as f:
        assert json.load(f) == scores
    with open(osp.join(out, 'oof_scores.csv'), newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['fold', 'metric', 'a', 'b', 'c', 'mean']
    assert rows[1] == ['0', 'dice', '0.500000', '1.000000', '', '0.750000']
    assert rows[5] == ['mean', 'dice', '0.600000', '0.500000', '0.400000',
                       '0.500000']
    assert len(rows) == 7
    png = cv2.imread(osp.join(out, 'oof_scores.png'))
    assert png is not None and png.ndim == 3
    with open(osp.join(out, 'members.txt')) as f:
        lines = f.read().split('\n')
    assert lines[0] == (f"{osp.join(out, 'fold0', 'config.py')} "
                        f"{osp.join(out, 'fold0', 'iter_10.pth')}")
    assert len(lines) == 3 and lines[2] == ''
    assert '--member' in result['command']
    assert '--scores' in result['command']
    assert '--cfg-options' not in result['command']  # not a full config
    # best checkpoints, a fold without scores is left out with a warning
    _fake_fold(out, 2, [0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    os.remove(osp.join(out, 'fold2', OOF_JSON))
    with pytest.warns(UserWarning, match=r'folds \[2\]'):
        result = collect_kfold(out)
    assert result['missing'] == [2]
    assert result['members'][0][1].endswith('best_mDice_iter_2.pth')
    assert '--scores' not in result['command']  # fold 2 has no scores


def test_collect_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='no fold'):
        collect_kfold(str(tmp_path))
    _fake_fold(str(tmp_path), 0, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    _fake_fold(str(tmp_path), 1, [0.5, 0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match='list of 3 numbers'):
        collect_kfold(str(tmp_path))
    with pytest.raises(ValueError, match="`metric` should be"):
        collect_kfold(str(tmp_path), metric='f1')


def test_find_checkpoint(tmp_path):
    assert find_checkpoint(str(tmp_path)) is None
    for name in ('iter_9.pth', 'iter_10.pth'):
        open(tmp_path / name, 'wb').close()
    assert find_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_9.pth'))
    assert find_checkpoint(str(tmp_path), 'last') == \
        str(tmp_path / 'iter_9.pth')
    # a relative record (mmengine's find_latest_checkpoint returns it as
    # written), a stale one (file deleted): the highest number
    (tmp_path / 'last_checkpoint').write_text('iter_9.pth')
    assert find_checkpoint(str(tmp_path), 'last') == \
        str(tmp_path / 'iter_9.pth')
    os.remove(tmp_path / 'iter_9.pth')
    assert find_checkpoint(str(tmp_path), 'last') == \
        str(tmp_path / 'iter_10.pth')
    open(tmp_path / 'best_mDice_iter_4.pth', 'wb').close()
    assert find_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'best_mDice_iter_4.pth')
    with pytest.raises(ValueError, match="`which` should be"):
        find_checkpoint(str(tmp_path), 'first')


def test_train_folds_runs_the_package_module(tmp_path, monkeypatch):
    """Folds run ``python -m mmseg_ext.tools.train`` (no path into a
    checkout), or ``train_script`` when given; --resume where a checkpoint
    exists; finished folds are skipped."""
    import subprocess
    import sys

    from mmseg_ext.apis import kfold

    for k in range(2):
        os.makedirs(tmp_path / f'fold{k}')
        (tmp_path / f'fold{k}' / 'config.py').write_text('')
    calls = []

    def fake_run(cmd, env=None):
        calls.append((cmd, env))
        work_dir = cmd[cmd.index('--work-dir') + 1]
        open(osp.join(work_dir, 'iter_1.pth'), 'wb').close()
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(kfold.subprocess, 'run', fake_run)
    assert kfold.train_folds(str(tmp_path), train_args=['--amp']) == [0, 1]
    cmd, env = calls[0]
    assert cmd[:3] == [sys.executable, '-m', 'mmseg_ext.tools.train']
    assert cmd[3:] == [str(tmp_path / 'fold0' / 'config.py'), '--work-dir',
                       str(tmp_path / 'fold0'), '--amp']
    import mmseg_ext
    parent = osp.dirname(osp.dirname(osp.abspath(mmseg_ext.__file__)))
    assert parent in env['PYTHONPATH'].split(os.pathsep) or \
        parent in __import__('site').getsitepackages()
    with open(tmp_path / 'fold1' / kfold.DONE_JSON) as f:
        assert json.load(f)['checkpoint'] == str(tmp_path / 'fold1' /
                                                 'iter_1.pth')
    # resume: fold 1 finished (skipped), fold 0 started (--resume)
    os.remove(tmp_path / 'fold0' / kfold.DONE_JSON)
    calls.clear()
    assert kfold.train_folds(str(tmp_path), resume=True,
                             train_script='my_train.py') == [0]
    assert calls[0][0][:2] == [sys.executable, 'my_train.py']
    assert calls[0][0][-1] == '--resume'


def test_kfold_cli_trains_two_folds(tools, hand_bone_root, tmp_path):
    work_root = str(tmp_path / 'kfold')
    options = ['--cfg-options'] + [
        f'{key}.dataset.data_root={hand_bone_root}'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    cmd = [tools.python, 'tools/kfold.py', _tiny_cfg(tools), '--num-folds',
           '2', '--work-root', work_root, '--train']
    proc = tools.run(cmd + options, timeout=240)
    assert proc.returncode == 0, tools.describe(proc)
    out = osp.join(work_root, 'tiny_segformer_handbone-kfold-64x64')
    for k in range(2):
        cfg = Config.fromfile(osp.join(out, f'fold{k}', 'config.py'))
        assert cfg.train_dataloader.dataset.fold == k
        assert cfg.val_dataloader.dataset.fold == k
        with open(osp.join(out, f'fold{k}', OOF_JSON)) as f:
            data = json.load(f)
        assert data['classes'] == list(HAND_BONE_CLASSES)
    with open(osp.join(out, 'oof_scores.json')) as f:
        scores = json.load(f)
    assert scores['folds'] == [0, 1]
    assert len(scores['mean_dice']) == len(HAND_BONE_CLASSES)
    assert osp.isfile(osp.join(out, 'oof_scores.png'))
    with open(osp.join(out, 'members.txt')) as f:
        members = [line.split() for line in f.read().splitlines()]
    assert [osp.basename(c) for c, _ in members] == ['config.py'] * 2
    assert all(osp.isfile(ckpt) and 'best_mDice' in ckpt
               for _, ckpt in members)
    assert 'tools/ensemble.py' in proc.stdout
    assert '--cfg-options test_dataloader.dataset.split=test' in proc.stdout
    assert f'--member {members[0][0]} {members[0][1]}' in proc.stdout
    # --resume skips both finished folds
    proc = tools.run(cmd + ['--resume'] + options, timeout=120)
    assert proc.returncode == 0, tools.describe(proc)
    assert proc.stdout.count('skipped') == 2
