# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Config edits the tools make before building a Runner."""
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
