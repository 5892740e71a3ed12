# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The synthetic BraTS generator: determinism, argument checks, its CLI."""
import csv
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmseg_ext.datasets.brats import (find_brats_cases, labels_to_regions,
                                      read_brats_case, read_nifti)
from mmseg_ext.datasets.generators import generate_brats
from mmseg_ext.datasets.generators.brats import (brats_affine, brats_atlas,
                                                 generate_brats_clinical)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def _files(root):
    out = {}
    for folder, _, names in os.walk(root):
        for n in names:
            with open(osp.join(folder, n), 'rb') as f:
                out[osp.relpath(osp.join(folder, n), root)] = f.read()
    return out


def test_deterministic_by_seed(tmp_path):
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        generate_brats(str(tmp_path / name), 2, (12, 12, 10),
                       'brats2023', seed=seed)
    a, b, c = (_files(str(tmp_path / n)) for n in 'abc')
    assert a == b
    assert a.keys() == c.keys() and a != c


@pytest.mark.parametrize('kwargs,match', [
    (dict(label_scheme='brats2019'), 'label_scheme'),
    (dict(split='test'), 'split'),
    (dict(num_cases=-1), 'num_cases'),
    (dict(size=(4, 4, 4)), 'size'),
    (dict(ext='.mha'), 'ext'),
    (dict(label_scheme='brats2023', with_case_355=True), 'with_case_355'),
    (dict(release=2021, with_case_355=True), 'with_case_355'),
    (dict(label_scheme='brats2023', release=2021), 'release'),
    (dict(release=2019), 'release'),
])
def test_argument_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_brats(str(tmp_path), **kwargs)


def _load_tool(rel):
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.basename(rel)[:-3], osp.join(REPO, rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli(tmp_path, capsys):
    tool = _load_tool('tools/misc/generate_brats_data.py')
    root = str(tmp_path / 'synth')
    tool.main([root, '--num-cases', '2', '--scheme', 'brats2020',
               '--size', '12', '12', '10', '--with-case-355', '--seed', '1'])
    assert 'wrote 2 brats2020 training cases' in capsys.readouterr().out
    cases = find_brats_cases(root)
    assert [c.case_id for c in cases] == ['BraTS20_Training_001',
                                          'BraTS20_Training_355']
    assert read_brats_case(cases[1])['seg'].shape == (12, 12, 10)
    with pytest.raises(SystemExit):
        tool.parse_args([root, '--scheme', 'brats2023', '--with-case-355'])
    with pytest.raises(SystemExit):
        tool.parse_args([root, '--num-cases', '-1'])


def test_brats2021_names(tmp_path):
    root = str(tmp_path)
    generate_brats(root, 2, (12, 12, 10), release=2021)
    cases = find_brats_cases(root)
    assert [c.case_id for c in cases] == ['BraTS2021_00000',
                                          'BraTS2021_00001']
    assert sorted(os.listdir(cases[0].case_dir)) == [
        f'BraTS2021_00000_{t}.nii.gz'
        for t in ('flair', 'seg', 't1', 't1ce', 't2')
    ]
    case = read_brats_case(cases[1])
    # BraTS 2021 keeps the 2020 labels (ET = 4).
    assert set(np.unique(case['seg'])) <= {0, 1, 2, 4}
    assert labels_to_regions(case['seg'], 'brats2020')[0].any()
    tool = _load_tool('tools/misc/generate_brats_data.py')
    tool.main([str(tmp_path / 'cli'), '--release', '2021', '--ext', 'mixed',
               '--num-cases', '2', '--size', '12', '12', '10'])
    assert sorted(os.listdir(tmp_path / 'cli' / 'BraTS2021_00001'))[0] == \
        'BraTS2021_00001_flair.nii'


def test_atlas_octants():
    labels, names = brats_atlas((4, 4, 2), brats_affine((4, 4, 2)))
    assert names[1] == 'left frontal' and names[8] == 'right occipital'
    # World x = -i: the larger i (smaller x) are the left hemisphere; world
    # y = 3 - j: small j are anterior; z = k: large k are superior.
    assert labels[3, 0, 1] == 1       # left, anterior, superior: frontal
    assert labels[0, 0, 1] == 5       # right frontal
    assert labels[3, 3, 0] == 4       # left, posterior, inferior
    assert labels[0, 0, 0] == 7       # right, anterior, inferior: temporal
    assert np.bincount(labels.ravel()).tolist() == [0] + [4] * 8


def test_clinical_csv_and_cli(tmp_path, capsys):
    tool = _load_tool('tools/misc/generate_brats_data.py')
    root = str(tmp_path / 'synth')
    csv_path = str(tmp_path / 'clinical.csv')
    atlas_path = str(tmp_path / 'atlas.nii.gz')
    tool.main([root, '--num-cases', '5', '--size', '16', '16', '12',
               '--clinical-csv', csv_path, '--atlas', atlas_path])
    out = capsys.readouterr().out
    assert 'wrote 5 clinical rows (1 deliberately on the wrong side)' in out
    with open(csv_path, newline='') as f:
        rows = list(csv.DictReader(f))
    assert [r['case_id'] for r in rows] == [
        f'BraTS20_Training_{i:03d}' for i in range(1, 6)]
    atlas = np.asarray(read_nifti(atlas_path).dataobj)
    with open(str(tmp_path / 'atlas_names.json')) as f:
        names = {int(k): v for k, v in json.load(f).items()}
    cases = find_brats_cases(root)
    for n, (row, case) in enumerate(zip(rows, cases)):
        wt = read_brats_case(case)['seg'] > 0
        # The true site: the atlas region holding most of the tumour.
        true = names[int(np.argmax(np.bincount(atlas[wt].astype(int),
                                               minlength=9)[1:])) + 1]
        side, lobe = true.split(' ')
        if n == 3:  # every 4th case is deliberately on the other side
            side = 'right' if side == 'left' else 'left'
        assert (row['suspected_hemisphere'], row['suspected_region']) == \
            (side, f'{side} {lobe}')
    # Deterministic: the same cases give the same rows.
    again = generate_brats_clinical(
        generate_brats(str(tmp_path / 'again'), 5, (16, 16, 12)),
        str(tmp_path / 'again.csv'))
    assert [r['suspected_region'] for r in again] == \
        [r['suspected_region'] for r in rows]
    with pytest.raises(SystemExit):
        tool.parse_args([root, '--release', '2021', '--scheme', 'brats2023'])
    with pytest.raises(SystemExit):
        tool.parse_args([root, '--split', 'validation', '--clinical-csv',
                         csv_path])


def test_lateral_tumours(tmp_path):
    def minority_fractions(cases):
        out = []
        for c in cases:
            i = np.nonzero(c['seg'] > 0)[0]
            mid = (c['seg'].shape[0] - 1) / 2
            out.append(min((i < mid).mean(), (i > mid).mean()))
        return np.array(out)

    size = (24, 24, 16)
    plain = generate_brats(str(tmp_path / 'a'), 6, size)
    lateral = generate_brats(str(tmp_path / 'b'), 6, size, lateral=True)
    # Without: most tumours cross the midline (>= 10 % on each side, the
    # report's "bilateral"); with: under 5 % of every tumour does.
    assert (minority_fractions(plain) >= 0.1).all()
    assert (minority_fractions(lateral) < 0.05).all()
    # Only the position changes: the same label values (ET-less cases stay
    # ET-less).
    for p, q in zip(plain, lateral):
        assert set(np.unique(p['seg'])) == set(np.unique(q['seg']))
