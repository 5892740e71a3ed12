# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The BraTS task adapter: classes from the dataset, folds, test split, and
the per-image methods that do not apply raising with what to use."""
import numpy as np
import pytest
from mmseg.registry import TASK_UTILS

from mmseg_ext.datasets.brats import REGIONS, BraTSDataset
from mmseg_ext.tasks import (BraTSTask, build_task, task_from_dataset,
                             task_names)


def test_registered_and_found_from_the_dataset():
    task = build_task('brats')
    assert isinstance(task, BraTSTask)
    assert isinstance(TASK_UTILS.build(dict(type='BraTSTask')), BraTSTask)
    assert 'brats' in task_names()
    wrapped = dict(type='RepeatDataset', times=2,
                   dataset=dict(type='BraTSDataset', data_root='x'))
    assert isinstance(task_from_dataset(wrapped), BraTSTask)
    assert task.label == 'BraTS'


def test_metadata_folds_and_test_split():
    task = BraTSTask()
    assert task.classes == ('WT', 'TC', 'ET') == REGIONS
    assert task.classes is BraTSDataset.METAINFO['classes']
    assert task.palette == BraTSDataset.METAINFO['palette']
    assert task.class_names(['0', '1', '2'], 3) == ['WT', 'TC', 'ET']
    assert task.gt_format == 'packed'
    cfg = dict(type='BraTSDataset')
    task.set_fold(cfg, 3, 5)
    assert cfg == dict(type='BraTSDataset', fold=3)
    assert task.test_split_args() == dict(split='test')
    assert task.test_split_options() == [
        'test_dataloader.dataset.split=test'
    ]


@pytest.mark.parametrize('call,needle', [
    (lambda t: t.check_submission('threshold'), 'OUT/nifti/'),
    (lambda t: t.submission_record(None, np.zeros((3, 2, 2)), 'threshold',
                                   None), 'BraTSMetric'),
    (lambda t: t.write_submission('s.csv', [], 0, []), 's.csv: BraTS'),
    (lambda t: t.read_targets('gt.png', 3), 'gt.png: .*label.npy volume'),
    (lambda t: t.list_unlabelled_images('imgs'),
     'imgs: .*tools/dataset_converters/brats.py'),
    (lambda t: t.pseudo_label_outputs('o', {}), 'pseudo-labels'),
    (lambda t: t.write_pseudo_label({}, {}, None, None), 'pseudo-labels'),
    (lambda t: t.pseudo_label_dataset('o'), 'seg.nii.gz'),
])
def test_per_image_methods_raise_with_the_alternative(call, needle):
    with pytest.raises(ValueError, match=needle):
        call(BraTSTask())
