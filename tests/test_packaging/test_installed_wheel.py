# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The wheel, installed non-editable, used from a folder outside the checkout.

Builds the wheel once per session from a copy of the files git tracks (plus
new files not ignored: what a fresh clone of this work holds; no ``build/``
left-overs), installs it with ``pip install --no-deps --target`` (torch,
mmcv and mmseg come from the environment) and runs everything with
``PYTHONPATH`` = that folder, from a folder outside the checkout, so the
editable install is shadowed:

- the wheel holds ``.mim/configs``, ``.mim/tools`` as plain files;
- ``mmseg_ext``, ``mmseg_ext::`` configs and the tools (also nested ones,
  ``mmseg_ext.tools.dataset_converters.hand_bone``) resolve into the
  installed copy;
- a config with ``_base_ = ['mmseg_ext::...']`` trains 2 iterations with
  ``python -m mmseg_ext.tools.train``;
- ``python -m mmseg_ext.tools.kfold`` trains 2 folds of 1 iteration (each in
  a child ``python -m mmseg_ext.tools.train``).

Select with ``pytest -m packaging``; skip with ``-m "not packaging"``.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

pytestmark = pytest.mark.packaging

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE_CFG = 'segformer/segformer_mit-b0_1xb8-20k_handbone-512x512.py'
# A tiny SegFormer at 64x64 on the hand-bone data, inheriting the shipped
# config through `mmseg_ext::`; DATA_ROOT is filled in by the test.
TINY_CFG = '''
_base_ = ['mmseg_ext::{base}']
data_root = {data_root!r}
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(embed_dims=8, num_layers=[1, 1, 1, 1],
                  num_heads=[1, 1, 1, 1], mlp_ratio=2, init_cfg=None),
    decode_head=dict(head=dict(in_channels=[8, 8, 8, 8], channels=8,
                               dropout_ratio=0.0)))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]
loader = dict(num_workers=0, persistent_workers=False,
              dataset=dict(data_root=data_root, pipeline=pipeline))
train_dataloader = dict(batch_size=2, **loader)
val_dataloader = dict(**loader)
test_dataloader = dict(**loader)
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2))
'''


def _run(cmd, cwd, env, timeout):
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f'{" ".join(map(str, cmd))}: exit code {proc.returncode}\n'
        f'--- stdout (tail) ---\n{proc.stdout[-3000:]}\n'
        f'--- stderr (tail) ---\n{proc.stderr[-3000:]}')
    return proc


def _copy_checkout(dst):
    """The files of a fresh clone of this work (tracked or new, not
    ignored; links kept as links) under ``dst``."""
    try:
        out = subprocess.run(
            ['git', 'ls-files', '--cached', '--others', '--exclude-standard',
             '-z'], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f'not a git checkout ({e}): cannot list its files')
    for rel in sorted(set(out.decode().split('\0')) - {''}):
        src = osp.join(REPO_ROOT, rel)
        target = osp.join(dst, rel)
        if not (osp.lexists(src)):
            continue  # deleted in the work tree, not yet in a commit
        os.makedirs(osp.dirname(target), exist_ok=True)
        if osp.islink(src):
            os.symlink(os.readlink(src), target)
        elif osp.isfile(src):
            shutil.copy2(src, target)


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """``pip wheel --no-deps --no-build-isolation`` of a clean copy."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    _copy_checkout(str(src))
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
          '--no-build-isolation', '-q', str(src), '-w', str(tmp / 'dist')],
         cwd=tmp, env=dict(os.environ), timeout=300)
    wheels = list((tmp / 'dist').glob('mmseg_ext-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory):
    """``(env, cwd, site)``: the wheel installed with ``--target site``;
    ``env`` runs Python with only that folder added, ``cwd`` is outside the
    checkout."""
    tmp = tmp_path_factory.mktemp('installed')
    site = tmp / 'site'
    _run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
          '--target', str(site), str(wheel)],
         cwd=tmp, env=dict(os.environ), timeout=300)
    env = dict(os.environ)
    env['PYTHONPATH'] = str(site)
    env['CUDA_VISIBLE_DEVICES'] = ''
    env.setdefault('OMP_NUM_THREADS', '1')
    cwd = tmp / 'project'
    cwd.mkdir()
    assert not str(cwd).startswith(REPO_ROOT + os.sep)
    return env, cwd, str(site)


@pytest.fixture(scope='module')
def project(installed, tmp_path_factory):
    """Hand-bone data in 2 folds (made in this process: data, not the
    package, is what the fixture provides) and the tiny ``mmseg_ext::``
    config, in the project folder."""
    from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
    from mmseg_ext.datasets.generators.hand_bone import generate_hand_bone

    _, cwd, _ = installed
    data_root = str(cwd / 'data' / 'hand_bone')
    generate_hand_bone(data_root, num_train_ids=2, num_test_ids=0, size=128,
                       seed=0)
    convert_hand_bone(data_root, num_folds=2, nproc=1, show_progress=False)
    config = cwd / 'tiny_handbone.py'
    config.write_text(TINY_CFG.format(base=BASE_CFG, data_root=data_root))
    return config


def test_wheel_ships_configs_and_tools(wheel):
    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
    names = {info.filename for info in infos}
    mim = 'mmseg_ext/.mim/'
    for rel in ('model-index.yml', 'tools/train.py', 'tools/test.py',
                'tools/kfold.py', 'tools/slurm_train.sh',
                'tools/dist_train.sh',
                'tools/dataset_converters/hand_bone.py'):
        assert mim + rel in names
    assert 'mmseg_ext/tools/__init__.py' in names
    for folder, _, files in os.walk(osp.join(REPO_ROOT, 'configs')):
        for name in files:
            if name.endswith('.py'):
                rel = osp.relpath(osp.join(folder, name), REPO_ROOT)
                assert mim + rel in names
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    # plain files, not links (a zip entry with the S_IFLNK mode)
    assert not [i.filename for i in infos
                if (i.external_attr >> 16) & 0o170000 == 0o120000]


def test_installed_package_is_used(installed):
    env, cwd, site = installed
    code = textwrap.dedent('''
        import json
        from importlib.util import find_spec
        import mmseg_ext, mmseg_ext.tools
        from mmengine.config import Config
        path, scope = Config._get_cfg_path(
            'mmseg_ext::_base_/datasets/hand_bone.py', '')
        tools = [find_spec(f'mmseg_ext.tools.{name}').origin for name in (
            'train', 'kfold', 'dataset_converters.hand_bone',
            'analysis_tools.class_weights')]
        print(json.dumps(dict(package=mmseg_ext.__file__,
                              tools=list(mmseg_ext.tools.__path__) + tools,
                              config=path, scope=scope)))
    ''')
    proc = _run([sys.executable, '-c', code], cwd=cwd, env=env, timeout=120)
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ('package', 'tools', 'config'):
        paths = found[key] if isinstance(found[key], list) else [found[key]]
        for path in paths:
            assert path.startswith(site + os.sep), (key, path)
            assert not osp.realpath(path).startswith(REPO_ROOT + os.sep)
    assert osp.isfile(found['config'])
    assert all(osp.isfile(p) for p in found['tools'][1:])
    # built into mmseg's registries, where this package registers
    assert found['scope'] == 'mmseg'


def test_train_inherits_packaged_config(installed, project):
    env, cwd, _ = installed
    work_dir = cwd / 'work_dirs' / 'train'
    proc = _run([sys.executable, '-m', 'mmseg_ext.tools.train', project,
                 '--work-dir', work_dir], cwd=cwd, env=env, timeout=300)
    assert 'Iter(train) [2/2]' in proc.stdout
    assert (work_dir / 'iter_2.pth').is_file()
    # the shipped config's model and data, with the tiny overrides
    dumped = (work_dir / 'tiny_handbone.py').read_text()
    assert "type='MultiLabelEncoderDecoder'" in dumped
    assert "type='HandBoneDataset'" in dumped


def test_kfold_trains_two_folds(installed, project):
    env, cwd, _ = installed
    work_root = cwd / 'work_dirs' / 'kfold'
    proc = _run([
        sys.executable, '-m', 'mmseg_ext.tools.kfold', project,
        '--num-folds', '2', '--work-root', work_root, '--train',
        '--cfg-options', 'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1'
    ], cwd=cwd, env=env, timeout=400)
    out = work_root / 'tiny_handbone'
    commands = [line for line in proc.stdout.splitlines()
                if re.match(r'fold \d+: ', line)]
    assert len(commands) == 2
    for line in commands:
        # `fold K: PYTHON -m mmseg_ext.tools.train CONFIG ...`: nothing
        # from the checkout after the interpreter (the venv may live there)
        args = line.split()[3:]
        assert args[:2] == ['-m', 'mmseg_ext.tools.train']
        assert not [a for a in args if a.startswith(REPO_ROOT)]
    for k in range(2):
        assert (out / f'fold{k}' / 'oof_per_class.json').is_file()
        assert (out / f'fold{k}' / 'iter_1.pth').is_file()
    members = (out / 'members.txt').read_text().splitlines()
    assert len(members) == 2
    with open(out / 'oof_scores.json') as f:
        assert json.load(f)['folds'] == [0, 1]
