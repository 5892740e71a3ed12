# Copyright (c) mmseg_ext contributors. All rights reserved.
"""tools/building_submission.py, tools/analysis_tools/search_threshold.py
and tools/misc/generate_building_data.py.

The submission tool runs once for real: 2 processes on CPU (gloo), a
tiny DeepLabV3+ MobileNetV3 checkpoint, the config's test set; the rows of
both ranks are gathered and rank 0 writes one CSV. The other modes run in
process (``main(argv)``).
"""
import csv
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401
from mmseg_ext.datasets.generators.building import generate_buildings
from mmseg_ext.utils.rle import rle_decode
from mmseg_ext.utils.threshold_search import ProbabilityCache

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(
    REPO, 'configs', 'deeplabv3plus',
    'deeplabv3plus_mobilenetv3-l_1xb8-20k_building-224x224.py')


def _load_tool(rel):
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.basename(rel)[:-3], osp.join(REPO, rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


@pytest.fixture(scope='module')
def building_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('building_tools')
    generate_buildings(str(root), num_train=6, num_test=7, train_size=64,
                       test_size=32, seed=2)
    return str(root)


def test_pred_dir_submission_rows_order_and_minus_one(building_root,
                                                      tmp_path):
    tool = _load_tool('tools/building_submission.py')
    test_ids = [r[0] for r in _read(osp.join(building_root, 'test.csv'))[1:]]
    pred_dir = tmp_path / 'preds'
    pred_dir.mkdir()
    masks = {}
    rng = np.random.default_rng(0)
    for k, img_id in enumerate(test_ids):
        if k == 3:
            continue  # no prediction -> -1
        mask = np.zeros((32, 32), np.uint8)
        if k not in (1, 5):  # empty predictions -> -1
            mask[rng.integers(0, 20):, 5:9] = 1
        masks[img_id] = mask
        cv2.imwrite(str(pred_dir / f'{img_id}.png'), mask * 255)
    out = str(tmp_path / 'submission.csv')
    tool.main(['--pred-dir', str(pred_dir), '--test-csv',
               osp.join(building_root, 'test.csv'), '--out', out])
    rows = _read(out)
    assert rows[0] == ['img_id', 'mask_rle']
    assert len(rows) - 1 == len(test_ids)  # every test row
    assert [r[0] for r in rows[1:]] == test_ids  # in test.csv order
    for img_id, rle in rows[1:]:
        if img_id not in masks or not masks[img_id].any():
            assert rle == '-1'
        else:
            np.testing.assert_array_equal(rle_decode(rle, (32, 32)),
                                          masks[img_id])
    # --min-area removes the small components.
    tool.main(['--pred-dir', str(pred_dir), '--test-csv',
               osp.join(building_root, 'test.csv'), '--out', out,
               '--min-area', '1000'])
    assert all(r[1] == '-1' for r in _read(out)[1:])


def _tiny_checkpoint(path):
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmseg')
    cfg.model.backbone.pretrained = False
    for key in ('decode_head', 'auxiliary_head'):
        cfg.model[key].head.norm_cfg = dict(type='BN', requires_grad=True)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    # A large positive bias on the decode head: every pixel is building.
    head = model.decode_head.head
    torch.nn.init.zeros_(head.conv_seg.weight)
    torch.nn.init.constant_(head.conv_seg.bias, 5.0)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)


def test_model_submission_two_processes(building_root, tmp_path, tools):
    ckpt = str(tmp_path / 'tiny.pth')
    _tiny_checkpoint(ckpt)
    config = tmp_path / 'config.py'
    config.write_text(f'_base_ = [{CONFIG!r}]\n')
    out = str(tmp_path / 'sub' / 'submission.csv')
    env = tools.env(with_test_hooks=False)
    proc = tools.run([
        tools.python, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={tools.free_port()}', 'tools/building_submission.py',
        str(config), ckpt, '--out', out, '--launcher', 'pytorch',
        '--work-dir',
        str(tmp_path / 'work'), '--threshold', '0.4', '--cfg-options',
        'model.backbone.pretrained=False',
        f'test_dataloader.dataset.data_root={building_root}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ], env=env, timeout=240)
    assert proc.returncode == 0, tools.describe(proc)
    rows = _read(out)
    test_ids = [r[0] for r in _read(osp.join(building_root, 'test.csv'))[1:]]
    assert [r[0] for r in rows[1:]] == test_ids
    # Every pixel predicted: one run covering the 32x32 tile, all rows.
    assert all(r[1] == '1 1024' for r in rows[1:])
    assert sorted(os.listdir(osp.dirname(out))) == ['submission.csv']


def test_search_threshold_tool_on_a_cache(tmp_path, capsys):
    tool = _load_tool('tools/analysis_tools/search_threshold.py')
    cache_dir = str(tmp_path / 'cache')
    cache = ProbabilityCache(cache_dir)
    rng = np.random.default_rng(0)
    for k in range(4):
        gt = np.zeros((24, 24), np.uint8)
        if k:
            gt[4:12, 6:18] = 1
        probs = gt * 0.7 + rng.random((24, 24)) * 0.25
        probs[20, 20] = 0.9  # a speck
        cache.add(f'img{k}', probs, gt)
    cache.save_index()
    tool.main(['--cache-dir', cache_dir, '--thresholds', '0.3:0.7:0.1',
               '--min-areas', '0,2,5', '--out-dir', str(tmp_path / 'out')])
    result = json.loads((tmp_path / 'out' / 'threshold_search.json')
                        .read_text())
    assert (tmp_path / 'out' / 'threshold_search.png').is_file()
    assert result['num_images'] == 4
    assert len(result['score']) == 5 and len(result['score'][0]) == 3
    assert result['best']['score'] == pytest.approx(1.0)
    assert result['best']['min_area'] == 2  # the speck is removed
    assert 'model.test_cfg.min_area=2' in capsys.readouterr().out


def test_generate_building_data_cli(tmp_path, monkeypatch, capsys):
    tool = _load_tool('tools/misc/generate_building_data.py')
    monkeypatch.setattr('sys.argv', [
        'generate_building_data.py',
        str(tmp_path / 'gen'), '--num-train', '3', '--num-test', '2',
        '--train-size', '64', '--test-size', '32'
    ])
    tool.main()
    assert 'wrote 3 train tiles' in capsys.readouterr().out
    assert len(_read(str(tmp_path / 'gen' / 'train.csv'))) == 4
    assert len(_read(str(tmp_path / 'gen' / 'test.csv'))) == 3


def test_search_threshold_tool_from_saved_probabilities(building_root,
                                                        tmp_path):
    """--prob-dir: probabilities saved at half the size; the RLE ground
    truth of the config's validation set follows them."""
    tool = _load_tool('tools/analysis_tools/search_threshold.py')
    config = tmp_path / 'config.py'
    config.write_text(
        "val_dataloader = dict(dataset=dict(type='BuildingRLEDataset', "
        f"data_root={building_root!r}, ann_file='train.csv', split='val', "
        'val_ratio=0.5, pipeline=[]))\n')
    prob_dir = tmp_path / 'probs'
    prob_dir.mkdir()
    for img_id, _, rle in _read(osp.join(building_root, 'train.csv'))[1:]:
        gt = rle_decode('' if rle == '-1' else rle, (64, 64))
        half = cv2.resize(gt, (32, 32), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(prob_dir / f'{img_id}.png'),
                    (half * 200 + 20).astype(np.uint8))
    tool.main([str(config), '--prob-dir', str(prob_dir), '--cache-dir',
               str(tmp_path / 'cache'), '--thresholds', '0.5',
               '--min-areas', '0'])
    result = json.loads((tmp_path / 'cache' / 'threshold_search.json')
                        .read_text())
    assert result['num_images'] == 3
    assert result['best']['score'] == pytest.approx(1.0)
