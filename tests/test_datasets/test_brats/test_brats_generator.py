# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The synthetic BraTS generator: determinism, argument checks, its CLI."""
import importlib.util
import os
import os.path as osp

import pytest

from mmseg_ext.datasets.brats import find_brats_cases, read_brats_case
from mmseg_ext.datasets.generators import generate_brats

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
