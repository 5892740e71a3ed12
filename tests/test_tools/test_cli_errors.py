# Copyright (c) mmseg_ext contributors. All rights reserved.
"""One-line CLI errors (issue 14, item 2): exit 2, the user's path, no
traceback; ``--debug`` shows it. Most cases in process (`main(argv)` is
wrapped by `tool_main`), three tools in a subprocess."""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest

from mmseg_ext.apis.ensemble import load_probs
from mmseg_ext.engine.tool_cli import (describe_error, load_config,
                                       note_partial, run_tool)
from mmseg_ext.utils.dist import RankError
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.io import atomic_path, dump_json_atomic

NOPE = '/nope_mmseg_ext_cli'


def _load(tools, rel):
    spec = importlib.util.spec_from_file_location(
        'cli_' + rel.replace('/', '_')[:-3], osp.join(tools.repo_root, rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fails(capsys, main, argv, *needles):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert 'Traceback' not in err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


@pytest.fixture
def test_csv(tmp_path):
    path = tmp_path / 'test.csv'
    path.write_text('img_id,img_path\nTEST_0,img/TEST_0.png\n')
    return str(path)


def cases(tmp):
    return [
        ('tools/train.py', [f'{NOPE}.py'], f'{NOPE}.py'),
        ('tools/test.py', [f'{NOPE}.py', 'x.pth'], f'{NOPE}.py'),
        ('tools/kfold.py', [f'{NOPE}.py', '--num-folds', '3'],
         f'{NOPE}.py'),
        ('tools/analysis_tools/class_weights.py', [f'{NOPE}.py'],
         f'{NOPE}.py'),
        ('tools/analysis_tools/search_threshold.py',
         [f'{NOPE}.py', 'x.pth', '--cache-dir', f'{tmp}/cache'],
         f'{NOPE}.py'),
        ('tools/hand_bone_submission.py',
         ['--pred-dir', NOPE, '--out', f'{tmp}/s.csv'], NOPE),
        ('tools/roi_specialist.py', ['make-dataset', NOPE, f'{tmp}/dst'],
         NOPE),
        ('tools/dataset_converters/hand_bone.py', [NOPE, '--nproc', '1',
                                                   '--no-progress'], NOPE),
        ('tools/ensemble.py', ['--prob-dirs', NOPE, '--split', 'val',
                               '--out-dir', f'{tmp}/ens'], NOPE),
        ('tools/pseudo_label.py',
         ['--task', 'building', '--prob-dirs', NOPE, '--images-dir',
          f'{NOPE}.csv', '--out-dir', f'{tmp}/pl', '--no-progress'], NOPE),
    ]


@pytest.mark.parametrize('index', range(10))
def test_bad_path_is_one_line(tools, tmp_path, capsys, index):
    rel, argv, needle = cases(str(tmp_path))[index]
    line = _fails(capsys, _load(tools, rel).main, argv, needle)
    assert line.startswith(f'{rel}: error: ')


def test_building_pred_dir_missing_or_empty(tools, tmp_path, capsys,
                                            test_csv):
    tool = _load(tools, 'tools/building_submission.py')
    out = str(tmp_path / 'sub.csv')
    line = _fails(capsys, tool.main, ['--pred-dir', NOPE, '--test-csv',
                                      test_csv, '--out', out], NOPE)
    assert 'check the path' in line
    empty = tmp_path / 'preds'
    empty.mkdir()
    _fails(capsys, tool.main, ['--pred-dir', str(empty), '--test-csv',
                               test_csv, '--out', out], str(empty),
           'none of the 1 test images', f'{out} was not written')
    assert not osp.exists(out)
    # a NaN probability map is named
    np.save(str(empty / 'TEST_0.npy'), np.full((4, 4), np.nan, np.float32))
    _fails(capsys, tool.main, ['--pred-dir', str(empty), '--test-csv',
                               test_csv, '--out', out],
           str(empty / 'TEST_0.npy'), 'NaN')


@pytest.mark.parametrize('argv,needle', [
    (['--search-thresholds', '1.5', '-2'], '--search-thresholds should be '
     'in [0, 1], but got 1.5, -2.0'),
    (['--search-thresholds', 'nan'], 'nan'),
    (['--member-threshold', '2'], '--member-threshold'),
    (['--strategy', 'hard', '--search-thresholds', '0.5'], 'ints >= 1'),
])
def test_ensemble_argument_ranges(tools, capsys, argv, needle):
    tool = _load(tools, 'tools/ensemble.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--prob-dirs', 'x', '--split', 'val', '--out-dir', 'y',
                   *argv])
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err


def test_generator_and_pseudo_label_ranges(tools, tmp_path, capsys):
    gen = _load(tools, 'tools/misc/generate_hand_bone_data.py')
    with pytest.raises(SystemExit) as exit_info:
        gen.main([str(tmp_path), '--size', '0'])
    assert exit_info.value.code == 2
    assert '--size should be >= 1' in capsys.readouterr().err
    pl = _load(tools, 'tools/pseudo_label.py')
    with pytest.raises(SystemExit):
        pl.main(['--task', 'building', '--prob-dirs', 'a', '--images-dir',
                 'b', '--out-dir', 'c', '--pos', '1.5'])
    assert '--pos should be in [0, 1]' in capsys.readouterr().err


def test_unregistered_type_names_the_config(tools, tmp_path, capsys):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("default_scope = 'mmseg'\n"
                   "custom_imports = dict(imports=['mmseg_ext'])\n"
                   "train_dataloader = dict(dataset=dict(type='NopeSet'))\n")
    tool = _load(tools, 'tools/analysis_tools/class_weights.py')
    _fails(capsys, tool.main, [str(cfg)], f'config {cfg}: NopeSet is not '
           'in the', 'is not registered')


def test_bad_config_file(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('x = (\n')
    with pytest.raises(ValueError, match=f'config {bad} cannot be loaded'):
        load_config(str(bad))
    with pytest.raises(IsADirectoryError):
        load_config(str(tmp_path))


# ------------------------------------------------------------ run_tool
def _raiser(err):

    def main(argv=None):
        note_partial('masks in OUT are complete')
        raise err

    return main


def test_run_tool_debug_and_partial_note(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_tool(_raiser(InputError(path='a.csv', where='line 3',
                                    value='x', expected='y')), 'tools/t.py',
                 ['--debug'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' in err and 'InputError' in err
    assert err.strip().splitlines()[-1] == (
        "tools/t.py: error: a.csv: line 3: got 'x'; expected y "
        '(masks in OUT are complete)')


def test_run_tool_interrupt_bug_and_ranks(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        run_tool(_raiser(KeyboardInterrupt()), 'tools/t.py', [])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        'tools/t.py: interrupted (masks in OUT are complete)']
    # a bug keeps its traceback
    with pytest.raises(ZeroDivisionError):
        run_tool(_raiser(ZeroDivisionError()), 'tools/t.py', [])
    # another rank: silent (rank 0 prints the RankError naming it)
    monkeypatch.setenv('RANK', '1')
    with pytest.raises(SystemExit) as exit_info:
        run_tool(_raiser(RankError('rank 1 failed: ValueError: x')),
                 'tools/t.py', [])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ''


def test_describe_os_errors():
    assert describe_error(PermissionError(13, 'Permission denied',
                                          '/o/a.csv')) == (
        '/o/a.csv: Permission denied; check its permissions or choose '
        'another path')
    assert describe_error(ValueError('two\nlines')) == 'two lines'


def test_atomic_write_errors_name_the_user_path(tmp_path, monkeypatch):
    target = str(tmp_path / 'out.json')

    def deny(src, dst):
        raise PermissionError(13, 'Permission denied', src, dst)

    monkeypatch.setattr(os, 'replace', deny)
    with pytest.raises(PermissionError) as info:
        dump_json_atomic({}, target)
    assert info.value.filename == target
    assert os.listdir(tmp_path) == []  # the temporary file is gone
    monkeypatch.undo()
    (tmp_path / 'dir.png').mkdir()
    with pytest.raises(IsADirectoryError) as info:
        with atomic_path(str(tmp_path / 'dir.png')) as tmp:
            open(tmp, 'w').close()
    assert info.value.filename == str(tmp_path / 'dir.png')


# ------------------------------------------------------- prediction files
@pytest.mark.parametrize('array,kwargs,match', [
    (np.zeros((2, 4, 4), np.float32), {}, 'uint8'),
    (np.zeros((4, 4), np.uint8), {}, r'\(C, H, W\)'),
    (np.zeros((256, 256, 1), np.uint8), {}, 'channels-last'),
    (np.zeros((2, 4, 4), np.uint8), dict(num_classes=3), '2 classes'),
    (np.zeros((2, 4, 4), np.uint8), dict(size=(4, 5)), r'\(4, 5\)'),
])
def test_load_probs_checks(tmp_path, array, kwargs, match):
    path = str(tmp_path / 'a.npy')
    np.save(path, array)
    with pytest.raises(InputError, match=match) as info:
        load_probs(path, **kwargs)
    assert info.value.path == path


def test_load_probs_not_npy(tmp_path):
    path = tmp_path / 'a.npy'
    path.write_text('junk')
    with pytest.raises(InputError, match='is not a .npy array'):
        load_probs(str(path))
    good = np.zeros((2, 4, 4), np.uint8)
    np.save(str(path), good)
    np.testing.assert_array_equal(
        load_probs(str(path), num_classes=2, size=(4, 4)), good)


@pytest.mark.parametrize('array,kwargs,match', [
    (np.full((4, 4), np.nan, np.float32), {}, 'non-finite'),
    (np.full((4, 4), 2.0, np.float32), {}, r'outside \[0, 1\]'),
    (np.zeros((3, 4, 4), np.float32), {}, r'\(H, W\)'),
    (np.zeros((4, 4), np.float32), dict(size=(4, 5)), 'size differs'),
    (np.array([['a']]), {}, 'dtype'),
])
def test_building_prediction_checks(tools, tmp_path, array, kwargs, match):
    tool = _load(tools, 'tools/building_submission.py')
    path = str(tmp_path / 'p.npy')
    np.save(path, array)
    with pytest.raises(InputError, match=match) as info:
        tool.read_prediction(path, **kwargs)
    assert info.value.path == path
    np.save(path, np.array([[0.2, 0.7], [0, 1]], np.float32))
    assert tool.read_prediction(path).tolist() == [[0, 1], [0, 1]]
    assert tool.read_prediction(path, 0.1).tolist() == [[1, 1], [0, 1]]


# ------------------------------------------------------------ subprocess
@pytest.mark.parametrize('rel,argv,needle', [
    ('tools/building_submission.py', ['--pred-dir', NOPE, '--test-csv',
                                      f'{NOPE}.csv', '--out', 'x.csv'],
     NOPE),
    ('tools/train.py', [f'{NOPE}.py'], f'{NOPE}.py'),
    ('tools/ensemble.py', ['--prob-dirs', NOPE, '--split', 'val',
                           '--out-dir', 'work_dirs/cli_test'], NOPE),
])
def test_subprocess_one_line_and_debug(tools, rel, argv, needle):
    proc = tools.run([tools.python, rel, *argv])
    assert proc.returncode == 2, tools.describe(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'{rel}: error: '), \
        tools.describe(proc)
    assert needle in lines[0] and 'Traceback' not in proc.stderr
    if rel == 'tools/train.py':
        proc = tools.run([tools.python, rel, *argv, '--debug'])
        assert proc.returncode == 2
        assert 'Traceback' in proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == lines[0]
