# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Reading BraTS cases: round trip of the generator, each bad input an
InputError naming the case and the file, and corrupt bytes never escaping
as another exception."""
import gzip
import os
import os.path as osp
import shutil

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmseg_ext.datasets.brats import (find_brats_cases, read_brats_case,
                                      read_nifti, write_nifti)
from mmseg_ext.utils.errors import InputError


@pytest.mark.parametrize('root', ['brats2020_root', 'brats2023_root'])
def test_round_trip(root, request):
    root, info = request.getfixturevalue(root)
    cases = find_brats_cases(root)
    assert len(cases) == len(info)
    for case, gen in zip(cases, info):
        out = read_brats_case(case)
        assert out['case_id'] == gen['case_id']
        assert out['image'].dtype == np.float32
        assert out['image'].shape == (4, 16, 16, 12)  # conftest's SIZE
        np.testing.assert_array_equal(out['image'], gen['image'])
        np.testing.assert_array_equal(out['affine'], gen['affine'])
        assert out['spacing'] == (1.0, 1.0, 1.0)
        assert isinstance(out['header'], nib.Nifti1Header)
        if gen['seg'] is None:
            assert out['seg'] is None
        else:
            assert out['seg'].dtype == np.uint8
            np.testing.assert_array_equal(out['seg'], gen['seg'])


def test_generated_content(brats2020_root, brats2023_root):
    """Nested regions, ET bright on T1ce, ED bright on FLAIR, a case
    without ET, the LPS-like affine."""
    for (_, info), et in ((brats2020_root, 4), (brats2023_root, 3)):
        labelled = [g for g in info if g['seg'] is not None]
        assert any(not (g['seg'] == et).any() for g in labelled)
        for g in labelled:
            seg, img = g['seg'], g['image']
            assert set(np.unique(seg)) <= {0, 1, 2, et}
            assert (seg == 2).any() and (seg == 1).any()
            brain = img[0] > 0
            assert not (seg[~brain]).any()  # tumour inside the brain
            flair, t1ce = img[0], img[2]
            assert flair[seg == 2].mean() > flair[brain & (seg == 0)].mean()
            if (seg == et).any():
                assert t1ce[seg == et].mean() > \
                    t1ce[brain & (seg == 0)].mean()
            assert np.array_equal(np.diag(g['affine']), [-1, -1, 1, 1])


def test_modality_subset_and_order(brats2023_root):
    case = find_brats_cases(brats2023_root[0])[0]
    out = read_brats_case(case, modalities=['T1ce', 't2f'])
    assert out['modalities'] == ('t1c', 't2f')
    full = brats2023_root[1][0]['image']
    np.testing.assert_array_equal(out['image'], full[[2, 0]])


@pytest.fixture
def case_copy(brats2020_root, tmp_path):
    """A writable copy of BraTS20_Training_001 (all `.nii.gz`)."""
    src = osp.join(brats2020_root[0], 'BraTS20_Training_001')
    shutil.copytree(src, str(tmp_path / 'BraTS20_Training_001'))
    return str(tmp_path)


def _expect_error(root, match, file_part, **kwargs):
    (case, ) = find_brats_cases(root)
    with pytest.raises(InputError, match=match) as err:
        read_brats_case(case, **kwargs)
    text = str(err.value)
    assert "case 'BraTS20_Training_001'" in text
    assert file_part in err.value.path and file_part in text
    return err.value


def _path(root, tag):
    return osp.join(root, 'BraTS20_Training_001',
                    f'BraTS20_Training_001_{tag}.nii.gz')


def test_missing_modality(case_copy):
    os.remove(_path(case_copy, 't1ce'))
    _expect_error(case_copy, 'missing', 'BraTS20_Training_001_t1ce.nii')


def test_shape_mismatch(case_copy):
    write_nifti(_path(case_copy, 't2'), np.zeros((16, 16, 11), np.int16),
                np.eye(4))
    _expect_error(case_copy, 'volume shape', '_t2.nii.gz')


def test_affine_mismatch_beyond_tolerance(case_copy):
    img = nib.load(_path(case_copy, 't1'))
    affine = img.affine.copy()
    affine[0, 3] += 5e-4  # within the tolerance
    write_nifti(_path(case_copy, 't1'), np.asarray(img.dataobj), affine)
    (case, ) = find_brats_cases(case_copy)
    read_brats_case(case)
    affine[0, 3] += 0.5
    write_nifti(_path(case_copy, 't1'), np.asarray(img.dataobj), affine)
    _expect_error(case_copy, 'affine', '_t1.nii.gz')


def test_label_of_the_other_scheme(case_copy):
    img = nib.load(_path(case_copy, 'seg'))
    seg = np.asarray(img.dataobj).copy()
    seg[seg == 4] = 3
    write_nifti(_path(case_copy, 'seg'), seg, img.affine)
    err = _expect_error(case_copy, 'label values', '_seg.nii.gz')
    assert err.value == [3]
    # Read as BraTS 2023 the same file is fine.
    (case, ) = find_brats_cases(case_copy)
    assert read_brats_case(case, label_scheme='brats2023')['seg'].max() == 3


def test_truncated_gz(case_copy):
    path = _path(case_copy, 'flair')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    _expect_error(case_copy, 'truncated or corrupt', '_flair.nii.gz')


def test_truncated_nii_header_promises_more(tmp_path):
    path = str(tmp_path / 'x.nii')
    write_nifti(path, np.ones((4, 4, 4), np.float32), np.eye(4))
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:-8])
    with pytest.raises(InputError, match='truncated'):
        read_nifti(path)


def test_write_nifti_atomic_and_deterministic(tmp_path):
    vol = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = nib.Nifti1Header()
    header.set_data_shape(vol.shape)
    header['descrip'] = b'from the input'
    header.set_data_dtype(np.float32)
    paths = [str(tmp_path / n) for n in ('a.nii.gz', 'b.nii.gz', 'c.nii')]
    for p in paths:
        write_nifti(p, vol, np.diag([-1, -1, 1, 1]), header)
    assert sorted(os.listdir(str(tmp_path))) == ['a.nii.gz', 'b.nii.gz',
                                                 'c.nii']  # no temp left
    with open(paths[0], 'rb') as a, open(paths[1], 'rb') as b:
        assert a.read() == b.read()
    for p in paths:
        img = read_nifti(p)
        assert img.get_data_dtype() == np.uint8  # the volume's, not header's
        np.testing.assert_array_equal(np.asarray(img.dataobj), vol)
        assert img.header['descrip'] == b'from the input'  # header kept
        # nibabel takes the zooms from the affine, not the header.
        assert img.header.get_zooms() == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match='.nii.gz'):
        write_nifti(str(tmp_path / 'a.mha'), vol, np.eye(4))


# A tiny `.nii.gz` for the byte-mutation property (built once).
_VOL = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
_AFF = np.diag([-1.0, -1.0, 1.0, 1.0])
_IMG = nib.Nifti1Image(_VOL, _AFF)
_IMG.header.set_slope_inter(None, None)
_GZ = gzip.compress(_IMG.to_bytes(), mtime=0)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    cut=st.integers(0, len(_GZ)),
    flips=st.lists(
        st.tuples(st.integers(0, len(_GZ) - 1), st.integers(1, 255)),
        max_size=3))
def test_mutated_bytes_read_exactly_or_input_error(tmp_path_factory, cut,
                                                   flips):
    data = bytearray(_GZ[:cut])
    for pos, mask in flips:
        if pos < len(data):
            data[pos] ^= mask
    path = str(tmp_path_factory.mktemp('mut') / 'x.nii.gz')
    with open(path, 'wb') as f:
        f.write(bytes(data))
    try:
        img = read_nifti(path)
    except InputError as err:
        assert err.path == path
        return
    np.testing.assert_array_equal(np.asarray(img.dataobj), _VOL)
    np.testing.assert_array_equal(img.affine, _AFF)
