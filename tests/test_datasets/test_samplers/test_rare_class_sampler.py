# Copyright (c) mmseg_ext contributors. All rights reserved.
"""RareClassSampler and its math (mmseg_ext.utils.rare_class_sampling)."""
import itertools
import json
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch.nn as nn
from mmengine.dataset import RepeatDataset
from mmengine.model import BaseModule
from mmengine.runner import Runner
from mmseg.registry import DATA_SAMPLERS, MODELS, TASK_UTILS

from mmseg_ext.datasets.pixel_counters import PixelCounter, hash_items
from mmseg_ext.datasets.samplers import RareClassSampler, dataset_index_rows
from mmseg_ext.utils.rare_class_sampling import (image_draw_probs,
                                                 image_presence,
                                                 rcs_class_probs,
                                                 repeat_factors)

# Hand-built per-image pixel counts: 4 images, 3 classes.
ROWS = np.array([[100, 0, 5],
                 [50, 10, 0],
                 [80, 0, 0],
                 [90, 0, 2]])


def test_rcs_probabilities_by_hand():
    presence = image_presence(ROWS, min_pixels=1)
    counts = ROWS.sum(0)  # 320, 10, 7 of 337
    probs = rcs_class_probs(counts, presence, temperature=0.1)
    logits = [(1 - 320 / 337) / 0.1, (1 - 10 / 337) / 0.1,
              (1 - 7 / 337) / 0.1]
    z = sum(math.exp(v) for v in logits)
    assert probs == pytest.approx([math.exp(v) / z for v in logits])
    # min_pixels=6: class 2 (5 and 2 pixels) is in no image: P = 0, and
    # image 1 (the only one with class 1) gets all of class 1's mass.
    presence6 = image_presence(ROWS, min_pixels=6)
    probs6 = rcs_class_probs(counts, presence6, temperature=0.1)
    assert probs6[2] == 0
    z6 = math.exp(logits[0]) + math.exp(logits[1])
    assert probs6[:2] == pytest.approx(
        [math.exp(logits[0]) / z6, math.exp(logits[1]) / z6])
    p_img = image_draw_probs(presence6, class_probs=probs6)
    # class 0 is in images 0..3 (P/4 each), class 1 only in image 1.
    assert p_img == pytest.approx(
        [probs6[0] / 4, probs6[0] / 4 + probs6[1], probs6[0] / 4,
         probs6[0] / 4])
    with pytest.raises(ValueError, match='no image contains'):
        rcs_class_probs(counts, image_presence(ROWS, 1000))


def test_repeat_factors_by_hand():
    presence = image_presence(ROWS)
    # image-level frequencies: 1, 1/4, 2/4; t = 1: r_c = 1, 2, sqrt(2).
    r_i, r_c = repeat_factors(presence, repeat_thr=1.0)
    assert r_c == pytest.approx([1.0, 2.0, math.sqrt(2)])
    assert r_i == pytest.approx([math.sqrt(2), 2.0, 1.0, math.sqrt(2)])
    # t below every frequency: no repetition.
    r_i, r_c = repeat_factors(presence, repeat_thr=0.2)
    assert r_i.tolist() == [1.0] * 4 and r_c.tolist() == [1.0] * 3


class _RowsDataset:
    """A dataset stub: ``len(ROWS)`` items whose counts are ROWS."""
    metainfo = dict(classes=('a', 'b', 'c'))

    def __init__(self, rows=ROWS):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def get_data_info(self, i):
        return dict(row=self.rows[i].tolist())

    def load_data_list(self):
        return []


@TASK_UTILS.register_module()
class _RowsCounter(PixelCounter):

    def items(self, dataset):
        return [info['row'] for info in map(dataset.get_data_info,
                                            range(len(dataset)))]

    def fingerprint(self, items):
        return hash_items(self.settings(), items)

    def count(self, item):
        return np.asarray(item, dtype=np.int64)


def build_sampler(**kwargs):
    kwargs.setdefault('counter', dict(type='_RowsCounter'))
    kwargs.setdefault('num_workers', 0)
    return DATA_SAMPLERS.build(
        dict(type='RareClassSampler', **kwargs),
        default_args=dict(dataset=kwargs.pop('dataset', _RowsDataset())))


@pytest.mark.parametrize('mode', ['rcs', 'repeat_factor'])
def test_stream_follows_the_probabilities(mode):
    sampler = build_sampler(mode=mode, temperature=0.1, min_pixels=6,
                            repeat_thr=1.0, seed=3)
    draws = np.array(list(itertools.islice(iter(sampler), 10000)))
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert freq == pytest.approx(sampler.image_probs, abs=0.015)
    if mode == 'repeat_factor':
        # r = sqrt(2), 2, 1, sqrt(2) (min_pixels=6: class 2 in no image,
        # so r = 1, 2, 1, 1): each pass of stochastic rounding holds
        # image 1 twice and the others once.
        assert sampler.image_factors.tolist() == [1.0, 2.0, 1.0, 1.0]
        first_pass = draws[:5]
        assert sorted(first_pass.tolist()) == [0, 1, 1, 2, 3]


def test_determinism_and_ddp_sharding(monkeypatch):
    def stream(sampler, n=60):
        return list(itertools.islice(iter(sampler), n))

    a, b = build_sampler(seed=7), build_sampler(seed=7)
    assert stream(a) == stream(b)
    assert stream(a) != stream(build_sampler(seed=8))
    full = stream(build_sampler(seed=7, mode='repeat_factor',
                                repeat_thr=1.0), 120)
    import mmengine.dataset.sampler as mmengine_sampler
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(mmengine_sampler, 'get_dist_info',
                            lambda rank=rank: (rank, 2))
        shards.append(stream(build_sampler(seed=7, mode='repeat_factor',
                                           repeat_thr=1.0)))
    # As InfiniteSampler: rank r takes draws r, r + 2, ... of one stream.
    assert shards[0] == full[0::2][:60] and shards[1] == full[1::2][:60]


def test_wrappers_and_validation():
    repeated = object.__new__(RepeatDataset)  # mmengine's wants a
    repeated.dataset, repeated.times = _RowsDataset(), 2  # BaseDataset
    rows = dataset_index_rows(repeated, 4)
    assert rows.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    for kwargs, match in [(dict(mode='uniform'), '`mode`'),
                          (dict(temperature=0), '`temperature`'),
                          (dict(repeat_thr=-1), '`repeat_thr`'),
                          (dict(min_pixels=0), '`min_pixels`')]:
        with pytest.raises(ValueError, match=match):
            build_sampler(**kwargs)


@MODELS.register_module()
class _RcsStubBackbone(BaseModule):

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return (self.conv(self.pool(x)), )


@TASK_UTILS.register_module()
class _RcsExplodingCounter(PixelCounter):

    def fingerprint(self, items):  # as LabelMapPixelCounter's default
        return super().fingerprint(items)

    def settings(self):  # same cache key as LabelMapPixelCounter
        return dict(type='LabelMapPixelCounter',
                    num_classes=self.num_classes, ignore_index=255,
                    reduce_zero_label=False, label_map=[])

    def count(self, item):
        raise AssertionError('the cached counts should have been used')


def make_runner(data_root, work_dir, sampler, max_iters=2):
    return Runner(
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1],
                bgr_to_rgb=False, size=(64, 64)),
            backbone=dict(type='_RcsStubBackbone'),
            decode_head=dict(
                type='FCNHead', in_channels=8, channels=8, num_convs=1,
                concat_input=False, num_classes=4, in_index=0,
                dropout_ratio=0,
                loss_decode=dict(type='CrossEntropyLoss'))),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=2, num_workers=0, sampler=sampler,
            dataset=dict(
                type='SyntheticImbalanceDataset', data_root=data_root,
                data_prefix=dict(img_path='img_dir/train',
                                 seg_map_path='ann_dir/train'),
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='LoadAnnotations'),
                          dict(type='PackSegInputs')])),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           param_scheduler=None, checkpoint=None),
        default_scope='mmseg', log_level='WARNING')


def test_sampler_in_runner(toy_data_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    runner = make_runner(toy_data_root, work_dir,
                         dict(type='RareClassSampler', num_workers=0))
    runner.train()
    sampler = runner.train_dataloader.sampler
    assert isinstance(sampler, RareClassSampler)
    report = json.load(open(osp.join(work_dir, 'class_sampling.json')))
    assert report['mode'] == 'rcs'
    assert report['classes'] == ['background', 'field', 'road', 'car']
    assert report['class_probs'] == pytest.approx(
        sampler.class_probs.tolist())
    # 'car' is the rarest class: it gets most of the class draws.
    assert int(np.argmax(report['class_probs'])) == 3
    assert report['draw_share'][3] > report['uniform_share'][3]
    assert osp.getsize(osp.join(work_dir, 'class_sampling.png')) > 1000
    cache = [f for f in os.listdir(work_dir)
             if f.startswith('class_pixel_counts_')]
    assert len(cache) == 1
    per_item = json.load(open(osp.join(work_dir, cache[0])))['per_item']
    assert len(per_item) == 8
    # A second run starts from the cached per-image counts.
    runner2 = make_runner(
        toy_data_root, work_dir,
        dict(type='RareClassSampler', num_workers=0,
             counter=dict(type='_RcsExplodingCounter')), max_iters=1)
    runner2.train()
    assert runner2.train_dataloader.sampler.presence.tolist() == \
        sampler.presence.tolist()


def test_per_item_counts_and_totals_only_cache(toy_data_root, tmp_path):
    import cv2
    from mmseg.registry import DATASETS

    from mmseg_ext.datasets.pixel_counters import count_dataset_pixels
    dataset = DATASETS.build(dict(
        type='SyntheticImbalanceDataset', data_root=toy_data_root,
        data_prefix=dict(img_path='img_dir/train',
                         seg_map_path='ann_dir/train'), pipeline=[]))
    expected = np.stack([
        np.bincount(cv2.imread(dataset.get_data_info(i)['seg_map_path'],
                               cv2.IMREAD_UNCHANGED).ravel(), minlength=4)
        for i in range(len(dataset))])
    cache_dir = str(tmp_path)
    totals, info = count_dataset_pixels(dataset, num_workers=2,
                                        cache_dir=cache_dir,
                                        show_progress=False)
    assert totals.tolist() == expected.sum(0).tolist()
    rows, info = count_dataset_pixels(dataset, num_workers=0,
                                      cache_dir=cache_dir, per_item=True,
                                      show_progress=False)
    assert info['cache_hit'] and rows.tolist() == expected.tolist()
    # A cache file from before per-item rows: recounted once, rewritten.
    data = json.load(open(info['cache']))
    del data['per_item']
    json.dump(data, open(info['cache'], 'w'))
    rows, info = count_dataset_pixels(dataset, num_workers=0,
                                      cache_dir=cache_dir, per_item=True,
                                      show_progress=False)
    assert not info['cache_hit'] and rows.tolist() == expected.tolist()
    assert 'per_item' in json.load(open(info['cache']))
