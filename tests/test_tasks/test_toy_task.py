# Copyright (c) mmseg_ext contributors. All rights reserved.
"""A third task registered inside the test runs through the generic code.

``ToyTask`` (a :class:`BaseSegTask` subclass with its own dataset type,
class list and submission layout) is registered in ``TASK_UTILS`` by a
fixture, then ``tools/ensemble.py`` (val + test), ``make_pseudo_labels``
and the k-fold config writer run on it: no package code names it.
"""
import csv
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS, TASK_UTILS

from mmseg_ext.apis import kfold
from mmseg_ext.apis.ensemble import save_probs
from mmseg_ext.apis.pseudo_label import make_pseudo_labels
from mmseg_ext.datasets import PackedMultiLabelDataset
from mmseg_ext.tasks import (BaseSegTask, build_task, task_from_dataset,
                             task_names)
from mmseg_ext.utils.ensemble import soft_vote
from mmseg_ext.utils.io import imwrite_atomic
from mmseg_ext.utils.multilabel import (pack_multilabel, read_packed_label,
                                        unpack_multilabel, write_packed_label)
from mmseg_ext.utils.rle import rle_decode

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('ring', 'dot')
STEMS = ('p0', 'p1', 'p2')
H, W = 6, 8


class ToyFoldDataset(PackedMultiLabelDataset):
    """Packed multi-label images with a ``fold`` argument."""
    METAINFO = dict(classes=CLASSES, palette=[[255, 0, 0], [0, 255, 0]])

    def __init__(self, fold=0, num_folds=2, **kwargs):
        self.fold, self.num_folds = fold, num_folds
        super().__init__(**kwargs)


class ToyTask(BaseSegTask):
    """Rows ``id,label,encoded`` with ``label = 'k:name'``."""
    name = 'toy'
    dataset_types = ('ToyFoldDataset', )
    fold_keys = ('fold', 'num_folds')
    submission_header = ('id', 'label', 'encoded')

    def submission_rows(self, name, rles, classes):
        return [(name, f'{k}:{c}', r)
                for k, (c, r) in enumerate(zip(classes, rles))]

    def test_split_args(self):
        return dict(test_mode=True)


@pytest.fixture(scope='module', autouse=True)
def toy_registered():
    DATASETS.register_module(module=ToyFoldDataset)
    TASK_UTILS.register_module(module=ToyTask)
    yield
    DATASETS._module_dict.pop('ToyFoldDataset')
    TASK_UTILS._module_dict.pop('ToyTask')


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    """Images, packed ground truth and two members' probabilities."""
    root = tmp_path_factory.mktemp('toy')
    rng = np.random.default_rng(0)
    dirs = [str(root / 'm0'), str(root / 'm1')]
    for i, stem in enumerate(STEMS):
        imwrite_atomic(rng.integers(0, 255, (H, W, 3)).astype(np.uint8),
                       str(root / 'images' / f'{stem}.png'))
        masks = np.zeros((2, H, W), np.uint8)
        masks[0, 1:4, 1 + i:5 + i] = 1
        masks[1, 4:, :2] = 1
        write_packed_label(str(root / 'gt' / f'{stem}.png'),
                           pack_multilabel(masks))
        for d in dirs:
            noise = rng.random((2, H, W)) * 0.3
            save_probs(osp.join(d, stem + '.npy'),
                       np.clip(masks * 0.7 + noise, 0, 1))
    return dict(root=root, dirs=dirs)


def load_tool():
    path = osp.join(ROOT, 'tools', 'ensemble.py')
    spec = importlib.util.spec_from_file_location('ensemble_tool_toy', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registered_and_found():
    assert 'toy' in task_names()
    assert isinstance(build_task('toy'), ToyTask)
    assert build_task('ToyTask').classes == CLASSES
    wrapped = dict(type='ConcatDataset',
                   datasets=[dict(type='ToyFoldDataset', data_root='x')])
    assert isinstance(task_from_dataset(wrapped), ToyTask)
    assert kfold.FOLD_DATASETS['ToyFoldDataset'] is True


def test_ensemble_val_and_test(toy_data, tmp_path):
    tool = load_tool()
    dirs, root = toy_data['dirs'], toy_data['root']
    val = tmp_path / 'val'
    tool.main(['--prob-dirs', *dirs, '--task', 'toy', '--split', 'val',
               '--gt-dir', str(root / 'gt'), '--out-dir', str(val)])
    result = json.loads((val / 'thresholds.json').read_text())
    assert result['classes'] == list(CLASSES)  # the task's names
    assert result['num_images'] == 3
    # test: the task's CSV (--out without --submission: the --task's)
    out = tmp_path / 'sub.csv'
    tool.main(['--prob-dirs', *dirs, '--task', 'toy', '--thresholds',
               str(val / 'thresholds.json'), '--out', str(out),
               '--out-dir', str(tmp_path / 'masks')])
    rows = list(csv.reader(open(out, newline='')))
    assert rows[0] == ['id', 'label', 'encoded']
    assert [r[:2] for r in rows[1:]] == [[f'{s}.png', f'{k}:{c}']
                                         for s in STEMS
                                         for k, c in enumerate(CLASSES)]
    thr = np.asarray(result['thresholds'], np.float32).reshape(-1, 1, 1)
    for i, stem in enumerate(STEMS):
        probs = [np.load(osp.join(d, stem + '.npy')) for d in dirs]
        expected = (soft_vote(probs) > thr).astype(np.uint8)
        for k in range(2):
            np.testing.assert_array_equal(
                rle_decode(rows[1 + 2 * i + k][2], (H, W)), expected[k])
        masks = unpack_multilabel(
            read_packed_label(str(tmp_path / 'masks' / f'{stem}.png'), 2),
            2)
        np.testing.assert_array_equal(masks, expected)


def test_pseudo_labels(toy_data, tmp_path):
    out = str(tmp_path / 'pseudo')
    manifest = make_pseudo_labels('toy', toy_data['dirs'],
                                  str(toy_data['root'] / 'images'), out,
                                  pos=0.6, neg=0.4, show_progress=False)
    assert manifest['task'] == 'toy'
    assert manifest['num_kept'] == 3
    hint = manifest['dataset']
    assert hint['type'] == 'ToyFoldDataset'
    dataset = DATASETS.build(dict(hint, pipeline=[]))
    assert len(dataset) == 3
    info = dataset.get_data_info(0)
    labels = unpack_multilabel(read_packed_label(info['seg_map_path'], 2), 2)
    probs = [np.load(osp.join(d, 'p0.npy')) for d in toy_data['dirs']]
    merged = soft_vote(probs)
    unsure = ((merged > 0.4) & (merged < 0.6)).any(0)
    np.testing.assert_array_equal(labels[:, unsure],
                                  np.full((2, unsure.sum()), 255))
    np.testing.assert_array_equal(labels[:, ~unsure],
                                  (merged >= 0.6)[:, ~unsure])


def test_kfold_configs(tmp_path):
    cfg = tmp_path / 'toy_cfg.py'
    cfg.write_text('''
def loader(**kw):
    return dict(batch_size=1, dataset=dict(
        type='ToyFoldDataset', data_root='data/toy', **kw))
train_dataloader = dict(batch_size=1, dataset=dict(
    type='ConcatDataset', datasets=[loader()['dataset']]))
val_dataloader = loader()
test_dataloader = loader()
val_evaluator = dict(type='MultiLabelDiceMetric', num_classes=2)
''')
    paths = kfold.write_kfold_configs(str(cfg), 3, str(tmp_path / 'folds'))
    for k, path in enumerate(paths):
        fold = Config.fromfile(path)
        assert fold.train_dataloader.dataset.datasets[0].fold == k
        assert fold.val_dataloader.dataset.num_folds == 3
        assert fold.test_dataloader.dataset.fold == k
        assert fold.val_evaluator.per_class_json.endswith(
            osp.join(f'fold{k}', kfold.OOF_JSON))
    assert kfold._test_split_options(paths[0]) == [
        'test_dataloader.dataset.test_mode=True'
    ]
