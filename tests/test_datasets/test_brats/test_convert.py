# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The BraTS slice-cache converter: the cache round trip against the
volumes, the index and split files, re-runs, each kind of bad input (with
and without ``skip_bad``), the CLI and a property test over random
volumes."""
import importlib.util
import json
import os
import os.path as osp
import shutil

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmseg_ext.datasets.brats import (BraTSConversionError, convert_brats,
                                      find_brats_cases, labels_to_regions,
                                      read_brats_index, write_nifti,
                                      zscore_brain)
from mmseg_ext.datasets.generators.brats import generate_brats
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.multilabel import unpack_multilabel

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
ENTRY_KEYS = {
    'case_id', 'shape', 'affine', 'spacing', 'slice_range', 'tumour_slices',
    'labelled', 'label_scheme', 'sources', 'image', 'label', 'stamps'
}


def _zscore_by_hand(image):
    """The contract: per modality, over voxels nonzero in any modality."""
    brain = (image != 0).any(axis=0)
    out = np.zeros(image.shape, np.float32)
    for m in range(image.shape[0]):
        v = image[m][brain].astype(np.float64)
        out[m][brain] = (v - v.mean()) / v.std()
    return out.astype(np.float16), brain


@pytest.fixture(scope='module')
def converted(brats2020_root, tmp_path_factory):
    root, cases = brats2020_root
    out = str(tmp_path_factory.mktemp('brats_cache'))
    summary = convert_brats(root, out, num_folds=2, show_progress=False)
    return root, cases, out, summary


def test_cache_round_trip(converted):
    root, cases, out, summary = converted
    assert summary['converted'] == [c['case_id'] for c in cases]
    assert summary['bad'] == summary['skipped'] == []
    index = read_brats_index(osp.join(out, 'index.json'))
    for gen in cases:
        entry = index['cases'][gen['case_id']]
        image = np.load(entry['image'])
        x, y, z = gen['image'].shape[1:]
        assert image.dtype == np.float16 and image.shape == (z, x, y, 4)
        expect, brain = _zscore_by_hand(gen['image'])
        # image.npy[z, :, :, c] = zscore(modality c)[:, :, z]
        np.testing.assert_array_equal(image, expect.transpose(3, 1, 2, 0))
        assert np.all(image[~brain.transpose(2, 0, 1)] == 0)
        brain_z = np.flatnonzero(brain.any((0, 1)))
        assert entry['slice_range'] == [brain_z[0], brain_z[-1] + 1]
        if gen['seg'] is None:
            assert entry['label'] is None and not entry['labelled']
            assert entry['tumour_slices'] == []
            assert not osp.exists(osp.join(osp.dirname(entry['image']),
                                           'label.npy'))
            continue
        label = np.load(entry['label'])
        assert label.dtype == np.uint16 and label.shape == (z, x, y, 1)
        assert np.all(label >> 15 == 1)  # valid everywhere
        regions = labels_to_regions(gen['seg'], 'brats2020')
        for k in range(z):
            np.testing.assert_array_equal(
                unpack_multilabel(label[k], 3), regions[..., k])
        assert entry['tumour_slices'] == \
            np.flatnonzero(regions[0].any((0, 1))).tolist()


def test_index_fields(converted):
    root, cases, out, _ = converted
    with open(osp.join(out, 'index.json')) as f:
        index = json.load(f)
    assert index['version'] == 1 and index['label_scheme'] == 'brats2020'
    assert index['modalities'] == ['FLAIR', 'T1', 'T1ce', 'T2']
    assert sorted(index['cases']) == sorted(c['case_id'] for c in cases)
    for gen in cases:
        entry = index['cases'][gen['case_id']]
        assert set(entry) == ENTRY_KEYS
        assert entry['case_id'] == gen['case_id']
        assert entry['shape'] == [16, 16, 12]
        assert entry['affine'] == gen['affine'].tolist()
        assert entry['spacing'] == [1.0, 1.0, 1.0]
        assert entry['label_scheme'] == 'brats2020'
        assert entry['labelled'] == (gen['seg'] is not None)
        assert list(entry['sources']) == ['flair', 't1', 't1ce', 't2', 'seg']
        paths = gen['paths']
        assert list(entry['sources'].values())[:4] == \
            [osp.abspath(p) for p in paths[:4]]
        assert entry['sources']['seg'] == (
            osp.abspath(paths[4]) if len(paths) == 5 else None)
        assert entry['image'] == osp.join(out, 'cases', gen['case_id'],
                                          'image.npy')
    # case 355's label file has its odd name
    seg355 = index['cases']['BraTS20_Training_355']['sources']['seg']
    assert osp.basename(seg355) == 'W39_1998.09.19_Segm.nii'


def _lines(path):
    with open(path) as f:
        return f.read().splitlines()


def test_splits_patient_level_and_deterministic(converted, tmp_path):
    root, cases, out, summary = converted
    labelled = sorted(c['case_id'] for c in cases if c['seg'] is not None)
    unlabelled = [c['case_id'] for c in cases if c['seg'] is None]
    split_dir = osp.join(out, 'splits')
    assert sorted(os.listdir(split_dir)) == [
        'all.txt', 'fold0_train.txt', 'fold0_val.txt', 'fold1_train.txt',
        'fold1_val.txt', 'test.txt'
    ]
    assert _lines(osp.join(split_dir, 'all.txt')) == labelled
    assert _lines(osp.join(split_dir, 'test.txt')) == unlabelled
    vals = []
    for k in range(2):
        val = _lines(osp.join(split_dir, f'fold{k}_val.txt'))
        train = _lines(osp.join(split_dir, f'fold{k}_train.txt'))
        assert sorted(val + train) == labelled and not set(val) & set(train)
        vals += val
    assert sorted(vals) == labelled  # every case validates exactly once
    # the same seed gives the same folds (another cache folder)
    again = str(tmp_path / 'again')
    convert_brats(root, again, num_folds=2, show_progress=False)
    for name in os.listdir(split_dir):
        assert _lines(osp.join(split_dir, name)) == \
            _lines(osp.join(again, 'splits', name))
    # fewer labelled cases than folds: refused before any work
    with pytest.raises(ValueError, match='number of patients'):
        convert_brats(root, str(tmp_path / 'x'), num_folds=4,
                      show_progress=False)
    assert not osp.exists(str(tmp_path / 'x'))


def _copy_root(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('brats_slices'))
    return dst


def test_rerun_skips_unchanged_cases_and_force(brats2020_root, tmp_path):
    root = _copy_root(brats2020_root[0], str(tmp_path / 'root'))
    first = convert_brats(root, num_folds=2, show_progress=False)
    out = osp.join(root, 'brats_slices')  # the default, next to the data
    assert first['index'] == osp.join(out, 'index.json')
    ids = first['converted']
    again = convert_brats(root, num_folds=2, show_progress=False)
    assert again['converted'] == [] and again['skipped'] == ids
    # a newer mtime of one source file converts that case only
    case = find_brats_cases(root)[1]
    st = os.stat(case.images[2])
    os.utime(case.images[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = convert_brats(root, num_folds=2, show_progress=False)
    assert third['converted'] == [case.case_id]
    # a deleted cache file is rebuilt
    os.remove(osp.join(out, 'cases', ids[0], 'label.npy'))
    assert convert_brats(root, num_folds=2,
                         show_progress=False)['converted'] == [ids[0]]
    assert convert_brats(root, num_folds=2, force=True,
                         show_progress=False)['converted'] == ids
    # other modalities: every case again, with 2 channels
    sub = convert_brats(root, num_folds=2, modalities=['t1ce', 'FLAIR'],
                        show_progress=False)
    assert sub['converted'] == ids
    index = read_brats_index(osp.join(out, 'index.json'))
    assert index['modalities'] == ['T1ce', 'FLAIR']
    assert np.load(index['cases'][ids[0]]['image']).shape[-1] == 2
    # a case gone from the root leaves the index and the cache
    shutil.rmtree(osp.join(root, ids[0]))
    gone = convert_brats(root, num_folds=2, modalities=['t1ce', 'FLAIR'],
                         show_progress=False)
    assert gone['skipped'] == ids[1:] and gone['converted'] == []
    assert ids[0] not in read_brats_index(osp.join(out,
                                                   'index.json'))['cases']
    assert not osp.exists(osp.join(out, 'cases', ids[0]))


# --- bad input --------------------------------------------------------------
def _damage(case, kind):
    """Break one case; returns the file the error should name."""
    flair, t1, t1ce, t2 = case.images
    if kind == 'missing_modality':
        os.remove(t1)
        return osp.basename(case.expected_path('t1'))
    img = nib.load(t2)
    data = np.asarray(img.dataobj)
    if kind == 'shape':
        write_nifti(t2, data[:-1], img.affine)
        return osp.basename(t2)
    if kind == 'affine':
        affine = img.affine.copy()
        affine[0, 3] += 2.0
        write_nifti(t2, data, affine)
        return osp.basename(t2)
    if kind == 'label_value':
        seg = np.asarray(nib.load(case.seg).dataobj).copy()
        seg[0, 0, 0] = 3  # not a brats2020 label
        write_nifti(case.seg, seg, img.affine)
        return osp.basename(case.seg)
    if kind == 'truncated':
        with open(t1ce, 'rb') as f:
            raw = f.read()
        with open(t1ce, 'wb') as f:
            f.write(raw[:len(raw) // 2])
        return osp.basename(t1ce)
    if kind == 'non_finite':
        vol = data.astype(np.float32)
        vol[3, 3, 3] = np.nan
        write_nifti(t2, vol, img.affine)
        return osp.basename(t2)
    if kind == 'no_brain':
        for path in case.images:
            write_nifti(path, np.zeros_like(data), img.affine)
        return osp.basename(flair)
    raise AssertionError(kind)


BAD_KINDS = ['missing_modality', 'shape', 'affine', 'label_value',
             'truncated', 'non_finite', 'no_brain']


@pytest.fixture(scope='module')
def three_cases(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('brats_bad_src'))
    # .nii.gz throughout: the truncated file is a gzip stream
    generate_brats(root, 3, (16, 16, 10), 'brats2020', seed=4, ext='.nii.gz')
    return root


@pytest.mark.parametrize('kind', BAD_KINDS)
def test_bad_case_named_then_skipped(three_cases, tmp_path, kind):
    root = _copy_root(three_cases, str(tmp_path / 'root'))
    case = find_brats_cases(root)[1]
    name = _damage(case, kind)
    out = osp.join(root, 'brats_slices')
    with pytest.raises(BraTSConversionError) as info:
        convert_brats(root, num_folds=2, show_progress=False)
    message = str(info.value)
    assert message.startswith('1 of 3 BraTS case(s) cannot be converted '
                              '(2 converted, 0 up to date; no split file')
    assert f"case '{case.case_id}'" in message and name in message
    assert '--skip-bad' in message
    assert isinstance(info.value, InputError)
    # the good cases are converted and indexed; no split file is written
    index = read_brats_index(osp.join(out, 'index.json'))
    assert sorted(index['cases']) == \
        ['BraTS20_Training_001', 'BraTS20_Training_003']
    assert not osp.exists(osp.join(out, 'splits'))
    summary = convert_brats(root, num_folds=2, skip_bad=True,
                            show_progress=False)
    assert summary['bad'] == [case.case_id]
    assert summary['skipped'] == ['BraTS20_Training_001',
                                  'BraTS20_Training_003']
    assert name in summary['errors'][0]
    assert _lines(osp.join(out, 'splits', 'all.txt')) == \
        ['BraTS20_Training_001', 'BraTS20_Training_003']
    assert case.case_id not in read_brats_index(
        osp.join(out, 'index.json'))['cases']


def _load_cli():
    path = osp.join(REPO, 'tools', 'dataset_converters', 'brats.py')
    spec = importlib.util.spec_from_file_location('tool_brats_convert', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_converts_and_fails_in_one_line(three_cases, tmp_path, capsys):
    cli = _load_cli()
    root = _copy_root(three_cases, str(tmp_path / 'root'))
    out = str(tmp_path / 'cache')
    cli.main([root, '--out-dir', out, '--num-folds', '2', '--nproc', '2',
              '--modalities', 'T1ce', 'T2', '--label-scheme', 'brats2020',
              '--no-progress'])
    assert 'converted 3, up to date 0, bad 0' in capsys.readouterr().out
    assert read_brats_index(osp.join(out, 'index.json'))['modalities'] == \
        ['T1ce', 'T2']
    case = find_brats_cases(root)[0]
    name = _damage(case, 'truncated')
    with pytest.raises(SystemExit) as info:
        cli.main([root, '--out-dir', out, '--num-folds', '2',
                  '--modalities', 'T1ce', 'T2', '--no-progress'])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err
    assert err.startswith('tools/dataset_converters/brats.py: error: 1 of 3')
    assert case.case_id in err and name in err
    assert 'split files were not updated' in err
    cli.main([root, '--out-dir', out, '--num-folds', '2', '--modalities',
              'T1ce', 'T2', '--skip-bad', '--no-progress'])
    assert 'converted 0, up to date 2, bad 1' in capsys.readouterr().out
    # a root without cases: one line naming it
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path), '--no-progress'])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path) in err
    with pytest.raises(SystemExit):
        cli.main([root, '--num-folds', '1'])
    assert '--num-folds should be >= 2' in capsys.readouterr().err


# --- property tests ---------------------------------------------------------
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_converter_over_random_volumes(tmp_path_factory, data):
    """Random small volumes (int16 intensities, random labels of the
    scheme, random empty border slices): the cache is the hand z-score and
    the packed regions of each slice."""
    shape = tuple(data.draw(st.integers(2, 6), label=ax) for ax in 'XYZ')
    seed = data.draw(st.integers(0, 2**16), label='seed')
    rng = np.random.default_rng(seed)
    root = str(tmp_path_factory.mktemp('brats_prop'))
    image = rng.integers(-50, 400, (4, ) + shape).astype(np.int16)
    image[:, :, :, rng.random(shape[2]) < 0.3] = 0  # slices without brain
    image[:, :, :, data.draw(st.integers(0, shape[2] - 1))] = \
        rng.integers(1, 400, shape[:2])  # at least one brain slice
    seg = rng.choice(np.array([0, 1, 2, 4], np.uint8), shape)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    # two cases (two folds need two patients); the first is checked
    for case_id in ('BraTS20_Training_001', 'BraTS20_Training_002'):
        case_dir = osp.join(root, case_id)
        os.makedirs(case_dir)
        for m, tag in enumerate(('flair', 't1', 't1ce', 't2')):
            write_nifti(osp.join(case_dir, f'{case_id}_{tag}.nii'),
                        image[m], affine)
        write_nifti(osp.join(case_dir, f'{case_id}_seg.nii.gz'), seg,
                    affine)
    out = osp.join(root, 'cache')
    summary = convert_brats(root, out, num_folds=2, show_progress=False)
    assert summary['bad'] == [] and len(summary['converted']) == 2
    entry = read_brats_index(osp.join(out, 'index.json'))['cases'][
        'BraTS20_Training_001']
    z, brain = zscore_brain(image.astype(np.float32))
    np.testing.assert_array_equal(
        np.load(entry['image']), z.astype(np.float16).transpose(3, 1, 2, 0))
    regions = labels_to_regions(seg, 'brats2020')
    label = np.load(entry['label'])
    for k in range(shape[2]):
        np.testing.assert_array_equal(unpack_multilabel(label[k], 3),
                                      regions[..., k])
    brain_z = np.flatnonzero(brain.any((0, 1)))
    assert entry['slice_range'] == [brain_z[0], brain_z[-1] + 1]


@pytest.fixture(scope='module')
def index_path(converted):
    return osp.join(converted[2], 'index.json')


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edit=st.sampled_from([
    ('version', 2), ('label_scheme', 'brats2021'), ('modalities', ['T3']),
    ('modalities', []), ('cases', []), ('case.shape', [1, 2]),
    ('case.slice_range', [5, 3]), ('case.slice_range', [0, 99]),
    ('case.tumour_slices', [-1]), ('case.labelled', 'yes'),
    ('case.label', None), ('case.case_id', 'other'), ('case.shape', None),
    ('drop', 'affine'), ('bytes', b'{"version": 1,'),
    ('bytes', b'\xff\xfe'), ('bytes', b'[]'),
]), junk=st.binary(max_size=40))
def test_index_reader_names_file_and_field(index_path, tmp_path_factory,
                                           edit, junk):
    """Every malformed index is an InputError naming the file (never a
    KeyError/TypeError from a later reader); random bytes too."""
    with open(index_path, 'rb') as f:
        good = json.loads(f.read())
    path = str(tmp_path_factory.mktemp('idx') / 'index.json')
    key, value = edit
    data = json.loads(json.dumps(good))
    entry = data['cases']['BraTS20_Training_001']
    if key == 'bytes':
        raw = value
    else:
        if key == 'drop':
            del entry[value]
        elif key.startswith('case.'):
            entry[key[5:]] = value
        else:
            data[key] = value
        raw = json.dumps(data).encode()
    for blob in (raw, junk):
        with open(path, 'wb') as f:
            f.write(blob)
        if blob is junk:
            try:
                read_brats_index(path)
            except InputError as err:
                assert path in str(err)
            continue
        with pytest.raises(InputError) as info:
            read_brats_index(path)
        assert path in str(info.value)


def test_zscore_constant_modality():
    image = np.zeros((2, 2, 2, 1), np.float32)
    image[0, 0, 0, 0] = 5.0
    image[1, :, :, 0] = 7.0  # constant over the brain: std 0 -> 0
    z, brain = zscore_brain(image)
    assert brain[..., 0].all()
    assert z[1].tolist() == np.zeros((2, 2, 1)).tolist()
    assert z[0, 0, 0, 0] == pytest.approx(3 ** 0.5)  # (5 - 1.25) / 2.165


def test_brats2023_cases(brats2023_root, tmp_path):
    """The 2023 names (t2f, t1n, t1c, t2w) cache in the physical order and
    label 3 is ET."""
    root, cases = brats2023_root
    out = str(tmp_path / 'cache')
    convert_brats(root, out, num_folds=3, show_progress=False)
    index = read_brats_index(osp.join(out, 'index.json'))
    assert index['label_scheme'] == 'brats2023'
    assert index['modalities'] == ['FLAIR', 'T1', 'T1ce', 'T2']
    gen = cases[0]
    entry = index['cases'][gen['case_id']]
    assert osp.basename(entry['sources']['t1ce']).endswith('-t1c.nii.gz')
    expect, _ = _zscore_by_hand(gen['image'])
    np.testing.assert_array_equal(np.load(entry['image']),
                                  expect.transpose(3, 1, 2, 0))
    regions = labels_to_regions(gen['seg'], 'brats2023')
    assert regions[2].any()  # the first case has ET (label 3)
    label = np.load(entry['label'])
    for k in range(label.shape[0]):
        np.testing.assert_array_equal(unpack_multilabel(label[k], 3),
                                      regions[..., k])
    # three labelled cases, three folds: one validation case each
    for k in range(3):
        assert len(_lines(osp.join(out, 'splits', f'fold{k}_val.txt'))) == 1
