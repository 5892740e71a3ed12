# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The two shipped task adapters: ``HandBoneTask`` and ``BuildingTask``."""
import csv
import os.path as osp

import numpy as np
import pytest
from mmseg.registry import TASK_UTILS

from mmseg_ext.apis.ensemble import EnsembleItem
from mmseg_ext.datasets import HandBoneDataset
from mmseg_ext.datasets.generators import hand_bone as generator
from mmseg_ext.datasets.hand_bone import HAND_BONE_CLASSES
from mmseg_ext.evaluation.metrics import hand_bone_submission
from mmseg_ext.tasks import (BaseSegTask, BuildingTask, HandBoneTask,
                             build_task, task_from_dataset, task_names)


def test_build_task_specs():
    assert isinstance(build_task('hand_bone'), HandBoneTask)
    assert isinstance(build_task('BuildingTask'), BuildingTask)
    assert isinstance(build_task(dict(type='building')), BuildingTask)
    assert isinstance(TASK_UTILS.build(dict(type='HandBoneTask')),
                      HandBoneTask)
    task = BuildingTask()
    assert build_task(task) is task
    assert {'hand_bone', 'building'} <= set(task_names())
    with pytest.raises(ValueError, match="should be one of .*'nope'"):
        build_task('nope')
    with pytest.raises(ValueError, match='PackedLabelPixelCounter'):
        build_task('PackedLabelPixelCounter')  # in TASK_UTILS, no task


def test_task_from_dataset_follows_wrappers():
    wrapped = dict(type='RepeatDataset', times=2, dataset=dict(
        type='ConcatDataset', datasets=[dict(type='BuildingRLEDataset')]))
    assert isinstance(task_from_dataset(wrapped), BuildingTask)
    assert isinstance(task_from_dataset(dict(type='HandBoneDataset')),
                      HandBoneTask)
    assert task_from_dataset(dict(type='PackedMultiLabelDataset')) is None
    assert task_from_dataset(dict(type='X'), default='d') == 'd'


def test_hand_bone_classes_have_one_source():
    task = build_task('hand_bone')
    assert task.classes == HandBoneDataset.METAINFO['classes']
    assert task.classes is HAND_BONE_CLASSES
    assert len(task.classes) == 29 and task.classes[-1] == 'Ulna'
    assert len(task.palette) == 29
    # the generator and the metric import the dataset's list
    assert generator.HAND_BONE_CLASSES is HAND_BONE_CLASSES
    assert hand_bone_submission.HAND_BONE_CLASSES is HAND_BONE_CLASSES
    assert hand_bone_submission.write_submission_csv is \
        hand_bone_submission.write_hand_bone_csv


def test_class_names_fill_unnamed():
    task = HandBoneTask()
    assert task.class_names([str(c) for c in range(29)],
                            29) == list(HAND_BONE_CLASSES)
    assert task.class_names(['a', 'b'], 2) == ['a', 'b']
    assert task.class_names([], 3) == ['0', '1', '2']  # not 29
    assert BuildingTask().class_names([], 1) == ['building']


def test_folds_and_test_split():
    cfg = dict(type='HandBoneDataset')
    HandBoneTask().set_fold(cfg, 2, 5)
    assert cfg == dict(type='HandBoneDataset', fold=2)
    cfg = dict(type='BuildingRLEDataset')
    BuildingTask().set_fold(cfg, 1, 4)
    assert cfg == dict(type='BuildingRLEDataset', fold=1, num_folds=4)
    assert HandBoneTask().test_split_options() == [
        'test_dataloader.dataset.split=test'
    ]
    assert BuildingTask().test_split_options() == []


def item(name='x.png', img_id='x', position=3):
    return EnsembleItem('x', name, img_id, [], position=position)


def test_hand_bone_submission_rows(tmp_path):
    task = HandBoneTask()
    pred = np.zeros((2, 2, 3), np.uint8)
    pred[1, 0, 1:] = 1
    name, rles, key = task.submission_record(item(), pred, 'threshold', None)
    assert (name, rles, key) == ('x.png', ['', '2 2'], None)
    assert task.submission_text(name, rles, ['a', 'b']) == \
        'x.png,a,\nx.png,b,2 2\n'
    with pytest.raises(ValueError, match='should have 3 RLEs'):
        task.submission_rows(name, rles, ['a', 'b', 'c'])
    with pytest.raises(ValueError, match='hand-bone submission needs'):
        task.check_submission('argmax')
    path = str(tmp_path / 's.csv')
    assert task.write_submission(path, ['x.png,a,\n'], 1, ['a']) == 1
    assert open(path).read() == 'image_name,class,rle\nx.png,a,\n'


def test_building_submission_mask_and_csv(tmp_path):
    task = BuildingTask()
    pred = np.zeros((2, 2, 2), np.uint8)
    pred[1, 1, 1] = 1
    assert task.submission_record(item(), pred, 'threshold', 1) == \
        ('x', '4 1', 3)
    assert task.submission_record(item(), pred, 'threshold', None)[1] == ''
    label = np.array([[0, 1], [2, 1]], np.uint8)
    assert task.building_mask(label, 'argmax', None).tolist() == [
        [False, True], [False, True]]
    with pytest.raises(ValueError, match=r'--class-index should be in '
                       r'\[0, C=2\)'):
        task.submission_record(item(), pred, 'threshold', 2)
    task.check_submission('argmax')  # both decisions are fine
    path = str(tmp_path / 'b.csv')
    texts = [task.submission_text('a', '', []),
             task.submission_text('b', '1 2', [])]
    assert task.write_submission(path, texts, 2, []) == 2
    assert list(csv.reader(open(path, newline=''))) == [
        ['img_id', 'mask_rle'], ['a', '-1'], ['b', '1 2']]


def test_building_pseudo_label_channel():
    task = BuildingTask()
    probs = [np.zeros((2, 1, 1), np.uint8), np.ones((2, 1, 1), np.uint8)]
    weights = np.array([[1., 2.], [3., 4.]])
    out, w = task.pseudo_label_probs(probs, weights, None, 'f.npy')
    assert [p.shape for p in out] == [(1, 1, 1)] * 2
    assert w.tolist() == [[2.], [4.]]  # channel C - 1 = 1
    with pytest.raises(ValueError, match='f.npy: has C=3 classes'):
        task.pseudo_label_probs([np.zeros((3, 1, 1))], None, None, 'f.npy')
    with pytest.raises(ValueError, match=r'should be in \[0, 2\)'):
        task.pseudo_label_probs(probs, None, 5, 'f.npy')
    row_entry, row = task.write_pseudo_label(
        {}, dict(img_id='t1', rel='t1.png'),
        np.array([[[True, False]]]), np.zeros((1, 2), bool))
    assert row == ['t1', './train_img/t1.png', '1 1']
    assert row_entry == dict(img_id='t1', positive_fraction=0.5,
                             file='t1.png')
    assert task.pseudo_label_item(dict(image='/a/t1.png',
                                       file='t1.png')) == dict(rel='t1.png')


def test_hand_bone_pseudo_label_checks_classes(tmp_path):
    task = HandBoneTask()
    with pytest.raises(ValueError, match=r'f\.npy: hand-bone probabilities '
                       'should have C=29'):
        task.pseudo_label_probs([np.zeros((3, 1, 1))], None, None, 'f.npy')
    out = task.pseudo_label_outputs('/o', dict(rel='ID1/a.png'))
    assert out == dict(image=osp.join('/o', 'train/DCM', 'ID1/a.png'),
                       label=osp.join('/o', 'train/packed_labels',
                                      'ID1/a.png'))
    task.write_pseudo_index(str(tmp_path), [dict(rel='b'), dict(rel='a')],
                            [], 2)
    assert (tmp_path / 'splits' / 'fold1_train.txt').read_text() == 'a\nb\n'
    assert (tmp_path / 'splits' / 'all.txt').read_text() == 'a\nb\n'
    assert task.pseudo_label_dataset('/o') == dict(
        type='HandBoneDataset', data_root='/o', split='all')


def test_base_defaults():
    task = BaseSegTask()
    assert task.classes == () and task.label == 'BaseSegTask'
    assert task.fold_keys == ('fold', )
    assert task.test_split_options() == []
