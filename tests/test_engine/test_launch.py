# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Config edits the tools make before building a Runner."""
import pytest
from mmengine.config import Config

from mmseg_ext.engine.launch import drop_train_only_hooks


def test_drop_train_only_hooks_keeps_the_others():
    cfg = Config(dict(custom_hooks=[
        dict(type='EarlyStoppingHook', monitor='mDice'),
        dict(type='ClassWeightHook'),
        dict(type='EMAHook'),
    ]))
    assert drop_train_only_hooks(cfg) == ['EarlyStoppingHook',
                                          'ClassWeightHook']
    assert [h['type'] for h in cfg.custom_hooks] == ['EMAHook']


def test_drop_train_only_hooks_without_hooks():
    cfg = Config(dict())
    assert drop_train_only_hooks(cfg) == []
    assert cfg.custom_hooks == []


def test_tool_launcher_args_and_missing_environment(monkeypatch):
    import argparse

    import torch

    from mmseg_ext.engine.launch import (add_launcher_args,
                                         init_tool_distributed,
                                         start_tool_distributed)
    parser = argparse.ArgumentParser()
    add_launcher_args(parser)
    args = parser.parse_args(['--launcher', 'pytorch', '--local-rank', '3'])
    assert (args.launcher, args.local_rank) == ('pytorch', 3)
    device = 'cuda:0' if torch.cuda.is_available() else 'cpu'
    assert init_tool_distributed('none') == (0, 1, device)
    # torchrun's variables are missing: a one-line error naming the tool
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
                 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('LOCAL_RANK', '3')  # undone after the test
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    # (ValueError: one line `tools/x.py: error: ...` under run_tool)
    with pytest.raises(ValueError, match=r"cannot start "
                       r"the 'pytorch' launcher: .*RANK"):
        start_tool_distributed(args, 'tools/x.py')
