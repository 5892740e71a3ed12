# Copyright (c) mmseg_ext contributors. All rights reserved.
"""``tools/analysis_tools/compare_runs.py`` on work dirs of short real runs
of the tiny SegFormer test config (6 CPU iterations, validation at 3 and
6): one with ``PerClassIoUMetric`` writing its per-class JSON, one plain
MMSeg ``IoUMetric`` run whose per-class scores exist only in its log."""
import csv
import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmseg_ext.apis.compare_runs import (measure_speed, model_complexity,
                                         read_scalars)
from mmseg_ext.datasets.generators import generate_synthetic_imbalance

TEST_DIR = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(TEST_DIR))
CONFIG = osp.join(TEST_DIR, 'configs', 'tiny_segformer_synthimb-64x64.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'compare_runs_tool',
        osp.join(ROOT, 'tools', 'analysis_tools', 'compare_runs.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(data_root, work_dir, embed_dims=8, evaluator=None):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = work_dir
    for key in ('train_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data_root
    cfg.model.backbone.embed_dims = embed_dims
    cfg.model.decode_head.in_channels = [embed_dims] * 4
    cfg.val_dataloader = cfg.test_dataloader
    cfg.val_evaluator = evaluator or dict(type='IoUMetric',
                                          iou_metrics=['mIoU', 'mDice'])
    cfg.val_cfg = dict(type='ValLoop')
    cfg.train_cfg.val_interval = 3
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=6)
    # one visualizer per run: mmengine's instances are global by name, and
    # a second in-process run would write into the first one's scalars
    cfg.visualizer.name = f'compare_runs_{osp.basename(work_dir)}'
    return cfg


@pytest.fixture(scope='session')
def real_runs(tmp_path_factory):
    """Two trained work dirs (built once per test session, ~3 s)."""
    base = tmp_path_factory.mktemp('compare_runs')
    data_root = str(base / 'data')
    generate_synthetic_imbalance(data_root, num_train=8, num_val=4, size=64,
                                 seed=0)
    ours = str(base / 'segformer-e8')
    plain = str(base / 'segformer-e16')
    Runner.from_cfg(_config(data_root, ours, 8, dict(
        type='PerClassIoUMetric', iou_metrics=['mIoU', 'mDice'],
        per_class_json=osp.join(ours, 'val_scores.json')))).train()
    Runner.from_cfg(_config(data_root, plain, 16)).train()
    return ours, plain


def test_compare_real_runs(real_runs, tmp_path, capsys):
    ours, plain = real_runs
    out = str(tmp_path / 'cmp')
    _load_tool().main([ours, plain, '--out', out, '--metric', 'mIoU',
                       '--zoo', 'segformer_mit-b0_8xb2-160k_ade20k-512x512',
                       '--speed', '--speed-iters', '2', '--device', 'cpu',
                       '--bootstrap', '100'])
    assert 'compared 2 runs on mIoU' in capsys.readouterr().out
    res = json.load(open(osp.join(out, 'summary.json')))
    for run, wd in zip(res['runs'], real_runs):
        (path, ) = [osp.join(d, 'vis_data', 'scalars.json')
                    for d in [osp.dirname(osp.dirname(run['scalars']))]]
        values = [(r['step'], r['mIoU']) for r in read_scalars(path)
                  if 'mIoU' in r]
        assert [s for s, _ in values] == [3, 6]
        assert run['best'] == max(v for _, v in values)
        assert (run['last'], run['last_step']) == (values[-1][1], 6)
        assert run['crop'] == '64x64' and run['batch'] == 2
        assert run['speed']['device'].startswith('CPU')
        assert run['speed']['images_per_s'] > 0
    # per-class: the JSON of PerClassIoUMetric, the log table of IoUMetric
    a, b = res['runs']
    assert a['per_class_source'] == osp.join(ours, 'val_scores.json')
    assert b['per_class_source'].endswith('.log')
    iou = res['per_class']['iou']
    assert iou['runs'] == ['segformer-e8', 'segformer-e16']
    assert iou['classes'] == ['background', 'field', 'road', 'car']
    scores = json.load(open(osp.join(ours, 'val_scores.json')))
    assert iou['values'][0] == pytest.approx(scores['iou'])
    # the log's table is the one of the last validation: its mean is the
    # logged mIoU (both rounded to 2 decimals in percent)
    finite = [v for v in iou['values'][1] if v is not None]
    assert 100 * sum(finite) / len(finite) == pytest.approx(b['last'],
                                                            abs=0.011)
    diff = {d['key']: d['values'] for d in res['config_diff']}
    assert diff['model.backbone.embed_dims'] == [8, 16]
    assert diff['val_evaluator.type'] == ['PerClassIoUMetric', 'IoUMetric']
    assert 0 < a['params'] < b['params'] and 0 < a['flops'] < b['flops']
    text = open(osp.join(out, 'summary.md')).read()
    assert '## MMSeg model zoo: ADE20K' in text and 'images/s' in text
    assert '| `model.backbone.embed_dims` | `8` | `16` |' in text
    for name in ('curves.png', 'per_class.png', 'cost.png'):
        assert osp.getsize(osp.join(out, name)) > 1000, name
    with open(osp.join(out, 'summary.csv')) as f:
        assert [r['name'] for r in csv.DictReader(f)] == [
            'segformer-e8', 'segformer-e16']


def test_complexity_at_the_configs_channels(real_runs):
    """Params and FLOPs come from the config's ``in_channels``: the first
    patch embedding (7 x 7 conv, 8 filters, stride 4) is the only layer
    that sees the input channels."""
    ours, _ = real_runs
    cfg = Config.fromfile(osp.join(ours, 'tiny_segformer_synthimb-64x64.py'))
    rgb = model_complexity(cfg, crop=(32, 32))
    cfg.model.backbone.in_channels = 1
    gray = model_complexity(cfg, crop=(32, 32))
    assert rgb['input_shape'] == [3, 32, 32] and gray['input_shape'] == \
        [1, 32, 32]
    assert rgb['params'] - gray['params'] == 2 * 8 * 7 * 7
    # multiply-adds of the 8 x 8 output positions
    assert rgb['flops'] - gray['flops'] == 2 * 8 * 7 * 7 * 8 * 8
    from mmseg.registry import MODELS
    cfg.model.backbone.in_channels = 3
    built = MODELS.build(cfg.model)
    assert rgb['params'] == sum(p.numel() for p in built.parameters())
    speed = measure_speed(cfg, 'cpu', iters=1, warmup=0, crop=(32, 32))
    assert speed['iters'] == 1 and speed['device'].startswith('CPU')
    assert torch.get_num_threads() >= 1


def test_cli_errors_are_one_line(real_runs, tmp_path, capsys):
    ours, _ = real_runs
    tool = _load_tool()
    with pytest.raises(SystemExit) as exc:
        tool.main([str(tmp_path / 'missing'), '--out', str(tmp_path / 'o')])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run 'missing'" in err[0] and \
        'does not exist' in err[0]
    with pytest.raises(SystemExit) as exc:
        tool.main([ours, '--out', str(tmp_path / 'o'), '--zoo', 'nope'])
    assert exc.value.code == 2
    assert "got 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        tool.main([ours, '--out', str(tmp_path / 'o'), '--names', 'a', 'b'])
    assert exc.value.code == 2
