# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Finding BraTS cases: 2020/2021 and 2023 names, case 355, validation."""
import os
import os.path as osp

import pytest

from mmseg_ext.datasets.brats import (MODALITY_NAMES, find_brats_cases,
                                      select_modalities)
from mmseg_ext.datasets.generators.brats import CASE_355_SEG
from mmseg_ext.utils.errors import InputError


def test_brats2020_layout(brats2020_root):
    root, info = brats2020_root
    cases = find_brats_cases(root)
    assert [c.case_id for c in cases] == [
        'BraTS20_Training_001', 'BraTS20_Training_002',
        'BraTS20_Training_355', 'BraTS20_Validation_001']
    assert {c.label_scheme for c in cases} == {'brats2020'}
    for case, gen in zip(cases, info):
        assert case.modalities == ('flair', 't1', 't1ce', 't2')
        assert list(case.images) + ([case.seg] if case.seg else []) == \
            gen['paths']
    assert cases[0].images[0].endswith('_flair.nii.gz')
    assert cases[1].images[0].endswith('_flair.nii')
    assert osp.basename(cases[2].seg) == CASE_355_SEG
    assert cases[3].seg is None
    # An explicit scheme wins over the names (BraTS 2021 is brats2020).
    assert find_brats_cases(root, 'brats2023')[0].label_scheme == \
        'brats2023'


def test_brats2023_layout(brats2023_root):
    root, info = brats2023_root
    cases = find_brats_cases(root)
    assert [c.case_id for c in cases] == [
        f'BraTS-GLI-0000{i}-000' for i in (1, 2, 3)]
    for case, gen in zip(cases, info):
        assert case.label_scheme == 'brats2023'
        assert case.modalities == ('t2f', 't1n', 't1c', 't2w')
        assert case.seg.endswith('-seg.nii.gz')
        assert list(case.images) + [case.seg] == gen['paths']


def _touch(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    open(path, 'wb').close()


def test_brats2021_names_missing_modality_and_ignored_entries(tmp_path):
    root = str(tmp_path)
    for tag in ('flair', 't1', 't2', 'seg'):  # no t1ce
        _touch(osp.join(root, 'BraTS2021_00000',
                        f'BraTS2021_00000_{tag}.nii.gz'))
    _touch(osp.join(root, 'name_mapping.csv'))
    os.makedirs(osp.join(root, 'not_a_case'))
    (case, ) = find_brats_cases(root)
    assert case.label_scheme == 'brats2020'
    assert case.images[2] is None
    assert case.expected_path('t1ce').endswith('BraTS2021_00000_t1ce.nii.gz')
    assert case.seg.endswith('_seg.nii.gz')


def test_single_unmatched_nifti_is_the_label(tmp_path):
    root = str(tmp_path)
    for tag in MODALITY_NAMES['brats2020']:
        _touch(osp.join(root, 'BraTS20_Training_007',
                        f'BraTS20_Training_007_{tag}.nii'))
    _touch(osp.join(root, 'BraTS20_Training_007', 'label.nii'))
    assert find_brats_cases(root)[0].seg.endswith('label.nii')
    _touch(osp.join(root, 'BraTS20_Training_007', 'other.nii'))
    with pytest.raises(InputError, match='several other NIfTI') as err:
        find_brats_cases(root)
    assert 'BraTS20_Training_007' in str(err.value)


def test_root_errors(tmp_path, brats2020_root, brats2023_root):
    with pytest.raises(InputError, match='not a folder'):
        find_brats_cases(str(tmp_path / 'missing'))
    with pytest.raises(InputError, match='no case folder'):
        find_brats_cases(str(tmp_path))
    os.symlink(osp.join(brats2020_root[0], 'BraTS20_Training_001'),
               str(tmp_path / 'BraTS20_Training_001'))
    os.symlink(osp.join(brats2023_root[0], 'BraTS-GLI-00001-000'),
               str(tmp_path / 'BraTS-GLI-00001-000'))
    with pytest.raises(InputError, match='mixed BraTS naming'):
        find_brats_cases(str(tmp_path))
    with pytest.raises(ValueError, match='label_scheme'):
        find_brats_cases(str(tmp_path), 'brats2019')


def test_select_modalities():
    assert select_modalities('brats2023', ['T1ce', 't2f']) == ('t1c', 't2f')
    assert select_modalities('brats2020', None) == MODALITY_NAMES['brats2020']
    for bad in ('t1', [], ['t1c'], ['t1', 'T1']):
        with pytest.raises(ValueError, match='modalities'):
            select_modalities('brats2020', bad)
