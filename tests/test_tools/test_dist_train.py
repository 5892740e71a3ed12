# Copyright (c) mmseg_ext contributors. All rights reserved.
"""2-process training and testing on CPU (gloo) via dist_train/test.sh.

Also checks that ``ClassWeightHook`` (rank 0 counts, then broadcasts) gives
the same class weights on both ranks, and the CPU launch helpers in process.
"""
import json
import os.path as osp

import pytest
from mmengine.config import Config

import mmseg_ext  # noqa: F401
from mmseg.registry import HOOKS
from mmseg_ext.engine import dist_launch
from mmseg_ext.engine.launch import (replace_gpu_only_norms,
                                     setup_cpu_distributed)

HAS_CLASS_WEIGHT_HOOK = HOOKS.get('ClassWeightHook') is not None
# With ClassWeightHook when it exists, else the same run without it.
DDP_CONFIG = ('tiny_segformer_synthimb-64x64_class-weight.py'
              if HAS_CLASS_WEIGHT_HOOK else
              'tiny_segformer_synthimb-64x64_test-hooks.py')
NPROC = 2


def _records(work_dir):
    records = []
    for rank in range(NPROC):
        path = osp.join(work_dir, f'rank{rank}_weights.json')
        assert osp.isfile(path), f'{path} was not written'
        with open(path) as f:
            records.append(json.load(f))
    return records


@pytest.fixture(scope='module')
def ddp_run(tools, toy_data_root, tmp_path_factory):
    """``bash tools/dist_train.sh CONFIG 2`` for 2 iterations on CPU."""
    work_dir = tmp_path_factory.mktemp('ddp')
    env = tools.env(PORT=tools.free_port(), PYTHON=tools.python)
    proc = tools.run([
        'bash', 'tools/dist_train.sh',
        osp.join(tools.config_dir, DDP_CONFIG), NPROC, '--work-dir',
        work_dir, '--cfg-options', *tools.data_root_options(toy_data_root),
        'train_cfg.max_iters=2'
    ], env=env, timeout=180)
    return str(work_dir), proc


def test_ddp_cpu_train_completes(ddp_run, tools):
    work_dir, proc = ddp_run
    assert proc.returncode == 0, tools.describe(proc)
    assert "using the 'gloo' backend" in proc.stdout
    assert "plain 'BN'" in proc.stdout  # the config's SyncBN
    assert 'Iter(train) [2/2]' in proc.stdout
    rank0, rank1 = _records(work_dir)
    assert rank0['world_size'] == rank1['world_size'] == NPROC
    assert rank0['end_iter'] == rank1['end_iter'] == 2
    # DDP averaged the gradients: both ranks hold the same weights.
    assert rank0['param_sum'] == rank1['param_sum']
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))


@pytest.mark.skipif(
    not HAS_CLASS_WEIGHT_HOOK,
    reason='ClassWeightHook is not registered yet '
    '(mmseg_ext/engine/hooks/class_weight_hook.py)')
def test_ddp_class_weights_identical_on_both_ranks(ddp_run, tools):
    work_dir, proc = ddp_run
    assert proc.returncode == 0, tools.describe(proc)
    rank0, rank1 = _records(work_dir)
    assert rank0['class_weights'] == rank1['class_weights']
    weights = rank0['class_weights'][0]
    assert weights is not None and len(weights) == 4
    assert all(w > 0 for w in weights)


def test_dist_test_sh_two_processes(ddp_run, tools, toy_data_root):
    work_dir, train = ddp_run
    assert train.returncode == 0, tools.describe(train)
    env = tools.env(PORT=tools.free_port(), PYTHON=tools.python)
    proc = tools.run([
        'bash', 'tools/dist_test.sh',
        osp.join(tools.config_dir, DDP_CONFIG),
        osp.join(work_dir, 'iter_2.pth'), NPROC, '--work-dir', work_dir,
        '--cfg-options', *tools.data_root_options(toy_data_root)
    ], env=env, timeout=180)
    assert proc.returncode == 0, tools.describe(proc)
    # 4 val images over 2 ranks: 2 iterations each.
    assert 'Iter(test) [2/2]' in proc.stdout
    assert 'mIoU' in proc.stdout


# --- CPU launch helpers (in process) ---------------------------------------


def test_replace_gpu_only_norms():
    cfg = dict(
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        model=dict(
            backbone=dict(norm_cfg=dict(type='MMSyncBN')),
            heads=[dict(norm_cfg=dict(type='SyncBN')),
                   dict(norm_cfg=dict(type='GN', num_groups=2))]))
    replaced = replace_gpu_only_norms(cfg)
    assert replaced == [
        'cfg.norm_cfg', 'cfg.model.backbone.norm_cfg',
        'cfg.model.heads.0.norm_cfg'
    ]
    assert cfg['norm_cfg'] == dict(type='BN', requires_grad=True)
    assert cfg['model']['backbone']['norm_cfg'] == dict(type='BN')
    assert cfg['model']['heads'][1]['norm_cfg']['type'] == 'GN'


def test_setup_cpu_distributed_noop_without_launcher():
    cfg = Config(dict(norm_cfg=dict(type='SyncBN'), env_cfg=dict()))
    assert setup_cpu_distributed(cfg, 'none') is False
    assert cfg.norm_cfg.type == 'SyncBN'
    assert 'model_wrapper_cfg' not in cfg


@pytest.fixture
def no_cuda(monkeypatch):
    """Pretend there is no CUDA device; record process-group set-ups."""
    calls = []
    monkeypatch.setattr(dist_launch, '_cuda_available', lambda: False)
    monkeypatch.setattr(dist_launch, 'init_cpu_process_group',
                        lambda launcher, timeout=None: calls.append(
                            (launcher, timeout)))
    return calls


def test_setup_cpu_distributed_edits_config(no_cuda):
    cfg = Config(
        dict(
            model=dict(decode_head=dict(norm_cfg=dict(type='SyncBN'))),
            env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60)),
            sync_bn='torch',
            find_unused_parameters=True))
    assert setup_cpu_distributed(cfg, 'pytorch') is True
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.sync_bn is None
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=True)
    assert no_cuda == [('pytorch', 60)]


def test_setup_cpu_distributed_keeps_user_wrapper_cfg(no_cuda):
    cfg = Config(
        dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel', device_ids=[0],
                find_unused_parameters=True)))
    setup_cpu_distributed(cfg, 'pytorch')
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', device_ids=None,
        find_unused_parameters=True)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
