# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Hand-bone tools end to end: generator and converter CLIs, the submission
CLI from saved predictions and from a tiny trained model (one process and
two CPU processes writing one CSV)."""
import csv
import glob
import importlib.util
import os.path as osp

import numpy as np
import pytest

from mmseg_ext.datasets.generators.hand_bone import HAND_BONE_CLASSES
from mmseg_ext.utils.multilabel import pack_multilabel, write_packed_label
from mmseg_ext.utils.rle import rle_decode

C = len(HAND_BONE_CLASSES)
SIZE = 128
TINY = 'tiny_segformer_handbone-64x64.py'


def _load_tool(tools, rel):
    """Import a tool script as a module (its ``main(argv)``, in process)."""
    path = osp.join(tools.repo_root, rel)
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.basename(rel)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path):
    with open(path, newline='') as f:
        reader = csv.reader(f)
        assert next(reader) == ['image_name', 'class', 'rle']
        return list(reader)


def _test_images(root):
    return sorted(
        osp.basename(p)
        for p in glob.glob(osp.join(root, 'test', 'DCM', '*', '*.png')))


@pytest.fixture(scope='module')
def hand_bone_data(tools, tmp_path_factory):
    """Generated and converted by the CLIs (in process: their ``main``)."""
    root = str(tmp_path_factory.mktemp('hand_bone_tools') / 'data')
    generator = _load_tool(tools, 'tools/misc/generate_hand_bone_data.py')
    generator.main([root, '--num-train-ids', '3', '--num-test-ids', '1',
                    '--size', str(SIZE)])
    converter = _load_tool(tools, 'tools/dataset_converters/hand_bone.py')
    converter.main([root, '--num-folds', '3', '--nproc', '2'])
    return root


def test_converter_cli(hand_bone_data):
    root = hand_bone_data
    for k in range(3):
        assert osp.isfile(osp.join(root, 'splits', f'fold{k}_val.txt'))
    assert len(glob.glob(osp.join(root, 'train', 'packed_labels', '*',
                                  '*.png'))) == 6
    # the test images have no labels
    assert not osp.exists(osp.join(root, 'test', 'packed_labels'))


def test_converter_cli_rerun_skips_up_to_date_labels(hand_bone_data, tools,
                                                     capsys):
    converter = _load_tool(tools, 'tools/dataset_converters/hand_bone.py')
    capsys.readouterr()
    converter.main([hand_bone_data, '--num-folds', '3', '--no-progress'])
    assert 'converted 0, up to date 6, bad 0' in capsys.readouterr().out


def test_converter_cli_bad_input_and_skip_bad(hand_bone_data, tools,
                                              tmp_path, capsys):
    import shutil
    root = str(tmp_path / 'bad')
    shutil.copytree(hand_bone_data, root)
    json_path = sorted(
        glob.glob(osp.join(root, 'train', 'outputs_json', '*', '*.json')))[0]
    with open(json_path) as f:
        text = f.read()
    with open(json_path, 'w') as f:
        f.write(text.replace('"label": "Lunate"', '"label": "Lunatum"'))
    converter = _load_tool(tools, 'tools/dataset_converters/hand_bone.py')
    with pytest.raises(SystemExit) as exit_info:
        converter.main([root, '--num-folds', '3', '--nproc', '1',
                        '--no-progress'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{json_path}: annotation 24 has unknown label 'Lunatum'" in err
    converter.main([root, '--num-folds', '3', '--skip-bad', '--no-progress'])
    out = capsys.readouterr().out
    assert 'converted 0, up to date 5, bad 1' in out


def test_submission_cli_from_pred_dir(hand_bone_data, tools, tmp_path,
                                      capsys):
    root = hand_bone_data
    names = _test_images(root)
    assert len(names) == 2
    rng = np.random.default_rng(0)
    masks = {}
    for i, name in enumerate(names):
        masks[name] = rng.random((C, SIZE, SIZE)) < 0.2
        write_packed_label(
            osp.join(str(tmp_path), 'preds', f'ID00{i}', name),
            pack_multilabel(masks[name]))
    tool = _load_tool(tools, 'tools/hand_bone_submission.py')
    out = str(tmp_path / 'submission.csv')
    tool.main(['--pred-dir', str(tmp_path / 'preds'), '--out', out,
               '--data-root', root])
    rows = _rows(out)
    assert len(rows) == 2 * C
    assert [r[0] for r in rows] == [n for n in names for _ in range(C)]
    assert [r[1] for r in rows] == list(HAND_BONE_CLASSES) * 2
    for name, cls, rle in rows:
        np.testing.assert_array_equal(
            rle_decode(rle, (SIZE, SIZE)),
            masks[name][HAND_BONE_CLASSES.index(cls)])
    # a missing prediction is named
    missing = glob.glob(osp.join(str(tmp_path), 'preds', '*', names[1]))[0]
    import os
    os.remove(missing)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--pred-dir', str(tmp_path / 'preds'), '--out', out,
                   '--data-root', root])
    assert exit_info.value.code == 2
    assert f'have no prediction in {tmp_path / "preds"}, e.g. {names[1]}' \
        in capsys.readouterr().err


def test_submission_cli_needs_a_source(tools, capsys):
    tool = _load_tool(tools, 'tools/hand_bone_submission.py')
    with pytest.raises(SystemExit):
        tool.main(['--out', 'x.csv'])
    assert 'give CONFIG and CHECKPOINT' in capsys.readouterr().err


@pytest.fixture(scope='module')
def trained(hand_bone_data, tools, tmp_path_factory):
    root = hand_bone_data
    work_dir = str(tmp_path_factory.mktemp('hand_bone_train'))
    proc = tools.run([
        tools.python, 'tools/train.py',
        osp.join(tools.config_dir, TINY), '--work-dir', work_dir,
        '--cfg-options', f'train_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}'
    ])
    assert proc.returncode == 0, tools.describe(proc)
    return root, work_dir, osp.join(work_dir, 'iter_4.pth')


def test_submission_cli_with_a_trained_model(trained, tools, tmp_path):
    root, work_dir, ckpt = trained
    out = str(tmp_path / 'submission.csv')
    preds = str(tmp_path / 'preds')
    proc = tools.run([
        tools.python, 'tools/hand_bone_submission.py',
        osp.join(tools.config_dir, TINY), ckpt, '--out', out,
        '--data-root', root, '--save-pred-dir', preds, '--work-dir',
        str(tmp_path / 'wd')
    ])
    assert proc.returncode == 0, tools.describe(proc)
    assert 'dropped annotation loading' in proc.stdout
    names = _test_images(root)
    rows = _rows(out)
    assert len(rows) == len(names) * C
    assert [r[0] for r in rows] == [n for n in names for _ in range(C)]
    for _, _, rle in rows:  # masks at the original 128x128 size
        rle_decode(rle, (SIZE, SIZE))
    # the saved packed predictions give the same CSV
    tool = _load_tool(tools, 'tools/hand_bone_submission.py')
    again = str(tmp_path / 'again.csv')
    tool.main(['--pred-dir', preds, '--out', again, '--data-root', root])
    assert _rows(again) == rows


def test_submission_cli_ddp_writes_one_csv(trained, tools, tmp_path):
    root, work_dir, ckpt = trained
    single = str(tmp_path / 'single.csv')
    tool = _load_tool(tools, 'tools/hand_bone_submission.py')
    out = str(tmp_path / 'ddp.csv')
    env = tools.env(PORT=tools.free_port())
    proc = tools.run([
        tools.python, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={env["PORT"]}', 'tools/hand_bone_submission.py',
        osp.join(tools.config_dir, TINY), ckpt, '--out', out, '--data-root',
        root, '--launcher', 'pytorch', '--save-pred-dir',
        str(tmp_path / 'preds'), '--work-dir', str(tmp_path / 'wd')
    ], env=env, timeout=180)
    assert proc.returncode == 0, tools.describe(proc)
    assert "using the 'gloo' backend" in proc.stdout + proc.stderr
    rows = _rows(out)
    names = _test_images(root)
    assert len(rows) == len(names) * C
    # every rank's images are in the one CSV, as from saved predictions
    tool.main(['--pred-dir', str(tmp_path / 'preds'), '--out', single,
               '--data-root', root])
    assert _rows(single) == rows
