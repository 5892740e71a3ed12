# Copyright (c) mmseg_ext contributors. All rights reserved.
"""tools/train.py and tools/test.py end to end (single process, CPU).

A real crash (``os._exit(1)`` after iteration 4) and ``--resume`` on torch
>= 2.6, ``--amp`` without CUDA, MMSeg's own shipped ``tools/train.py`` with
``custom_imports`` only, and the ``torch.load`` allowlist of
``mmseg_ext.engine.compat``.
"""
import io
import json
import os.path as osp
import pickle

import mmseg
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmseg_ext.engine import amp
from mmseg_ext.engine.compat import apply_compat_patches
from mmseg_ext.engine.launch import AmpUnavailableError, check_amp_config

TINY = 'tiny_segformer_synthimb-64x64.py'
TINY_HOOKS = 'tiny_segformer_synthimb-64x64_test-hooks.py'
WEIGHTS_ONLY_ERROR = 'Weights only load failed'


@pytest.fixture(scope='module')
def killed_and_resumed(tools, toy_data_root, tmp_path_factory):
    """Train 6 iterations, crashing after 4, then ``--resume``."""
    work_dir = tmp_path_factory.mktemp('resume')
    cfg = osp.join(tools.config_dir, TINY_HOOKS)
    base = [tools.python, 'tools/train.py', cfg, '--work-dir', work_dir]
    killed = tools.run(base + [
        '--cfg-options', *tools.data_root_options(toy_data_root),
        'custom_hooks.0.kill_after_iter=4'
    ])
    resumed = tools.run(base + [
        '--resume', '--cfg-options',
        *tools.data_root_options(toy_data_root)
    ])
    return str(work_dir), killed, resumed


def test_crash_leaves_iter4_checkpoint(killed_and_resumed, tools):
    work_dir, killed, _ = killed_and_resumed
    assert killed.returncode == 1, tools.describe(killed)
    assert 'Saving checkpoint at 4 iterations' in killed.stdout
    assert 'Iter(train) [5/6]' not in killed.stdout


def test_resume_continues_at_iter4_and_ends_at_6(killed_and_resumed, tools):
    work_dir, _, resumed = killed_and_resumed
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, tools.describe(resumed)
    assert WEIGHTS_ONLY_ERROR not in output
    assert 'resumed epoch: 0, iter: 4' in output
    assert 'Iter(train) [5/6]' in output
    assert 'Iter(train) [1/6]' not in output
    with open(osp.join(work_dir, 'rank0_weights.json')) as f:
        record = json.load(f)
    assert record['start_iter'] == 4
    assert record['end_iter'] == 6
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))


def test_tool_test_loads_resumed_checkpoint(killed_and_resumed, tools,
                                            toy_data_root):
    work_dir, _, resumed = killed_and_resumed
    assert resumed.returncode == 0, tools.describe(resumed)
    proc = tools.run([
        tools.python, 'tools/test.py',
        osp.join(tools.config_dir, TINY_HOOKS),
        osp.join(work_dir, 'iter_6.pth'), '--work-dir', work_dir,
        '--cfg-options', *tools.data_root_options(toy_data_root)
    ])
    assert proc.returncode == 0, tools.describe(proc)
    assert WEIGHTS_ONLY_ERROR not in proc.stdout + proc.stderr
    assert 'Iter(test) [4/4]' in proc.stdout
    assert 'mIoU' in proc.stdout


def test_amp_without_cuda_fails_early(tools, toy_data_root, tmp_path):
    proc = tools.run([
        tools.python, 'tools/train.py',
        osp.join(tools.config_dir, TINY), '--amp', '--work-dir', tmp_path,
        '--cfg-options', *tools.data_root_options(toy_data_root)
    ], timeout=60)
    assert proc.returncode != 0
    assert '--amp needs a CUDA device' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_amp_optim_wrapper_in_config_without_cuda_raises(monkeypatch):
    from mmengine.config import Config
    monkeypatch.setattr(amp, '_cuda_available', lambda: False)
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper')))
    with pytest.raises(AmpUnavailableError, match='needs a CUDA device'):
        check_amp_config(cfg)
    check_amp_config(Config(dict(optim_wrapper=dict(type='OptimWrapper'))))


def test_mmseg_shipped_train_py_with_custom_imports(tools, toy_data_root,
                                                    tmp_path):
    """MMSeg's own tools/train.py trains and resumes our config.

    Only ``custom_imports = dict(imports=['mmseg_ext'])`` loads the package
    (PYTHONPATH holds the repo root, nothing else); ``Config.fromfile``
    imports it, so the torch.load allowlist is active for ``--resume`` too.
    """
    mmseg_train = osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(mmseg_train)
    env = tools.env(with_test_hooks=False)
    cmd = [
        tools.python, mmseg_train,
        osp.join(tools.config_dir, TINY), '--work-dir', tmp_path
    ]
    opts = tools.data_root_options(toy_data_root)
    first = tools.run(
        cmd + ['--cfg-options', *opts, 'train_cfg.max_iters=2'], env=env)
    assert first.returncode == 0, tools.describe(first)
    assert osp.isfile(osp.join(tmp_path, 'iter_2.pth'))

    resumed = tools.run(
        cmd + ['--resume', '--cfg-options', *opts, 'train_cfg.max_iters=3'],
        env=env)
    assert resumed.returncode == 0, tools.describe(resumed)
    assert WEIGHTS_ONLY_ERROR not in resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout
    assert 'Iter(train) [3/3]' in resumed.stdout


# --- the torch.load allowlist (in process) ---------------------------------


def _save(obj) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_compat_loads_message_hub_state_weights_only():
    apply_compat_patches()
    apply_compat_patches()  # idempotent
    hub = MessageHub('compat_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', 0.25, count=2)
    hub.update_info('eta', np.float64(1.5))
    hub.update_info('counts', np.arange(3, dtype=np.int64))
    state = torch.load(_save(hub.state_dict()), weights_only=True)

    buffer = state['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    np.testing.assert_array_equal(buffer.data[0], [0.5, 0.25])
    np.testing.assert_array_equal(buffer.data[1], [1, 2])
    assert buffer.mean() == pytest.approx((0.5 + 0.25) / 3)
    assert state['runtime_info']['eta'] == np.float64(1.5)
    np.testing.assert_array_equal(state['runtime_info']['counts'], [0, 1, 2])


def test_compat_allows_getattr_only_for_history_buffer_statistics():
    apply_compat_patches()
    assert getattr not in torch.serialization.get_safe_globals()
    loaded = torch.load(_save({'m': HistoryBuffer.mean}), weights_only=True)
    assert loaded['m'] is HistoryBuffer.mean
    # Pickle protocol 2 writes both as getattr(HistoryBuffer, name).
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(_save({'f': HistoryBuffer.register_statistics}),
                   weights_only=True)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(_save({'f': HistoryBuffer.__init__}), weights_only=True)
