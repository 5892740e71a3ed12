# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Helpers for the tools tests: run a tool in a subprocess, pick a port."""
import os
import os.path as osp
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Not under tests/data/: the repo's .gitignore ignores every `data/`.
TEST_DIR = osp.dirname(osp.abspath(__file__))
CONFIG_DIR = osp.join(TEST_DIR, 'configs')


def free_port() -> int:
    """A TCP port that was free a moment ago (for torchrun's master)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def tool_env(with_test_hooks: bool = True, **extra) -> dict:
    """Environment for a tool subprocess.

    ``PYTHONPATH`` gets the repo root (``mmseg_ext`` importable without
    installing) and, by default, ``tests/test_tools`` (``tools_test_hooks``).
    ``CUDA_VISIBLE_DEVICES`` is emptied: the tests check the CPU paths (gloo
    DDP, the ``--amp`` error) on every machine, a GPU one included.
    """
    env = dict(os.environ)
    paths = [REPO_ROOT] + ([TEST_DIR] if with_test_hooks else [])
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    env['CUDA_VISIBLE_DEVICES'] = ''
    env.setdefault('OMP_NUM_THREADS', '1')
    env.update({k: str(v) for k, v in extra.items()})
    return env


#: What a gloo rank prints when a C++ thread is still joinable as the
#: interpreter exits, after its work is done (see
#: ``mmseg_ext.engine.dist_launch.teardown_distributed``).
GLOO_EXIT_ABORT = 'terminate called without an active exception'


def run(cmd, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run ``cmd`` in the repo root; stdout/stderr captured as text.

    A torchrun job whose only failure is a rank's SIGABRT at interpreter
    exit (:data:`GLOO_EXIT_ABORT`, seen about once in five full suites on
    the 2-core CI machine while both xdist workers run multi-process tests)
    is run once more; any other failure is returned as it is.
    """
    def once():
        return subprocess.run(
            [str(c) for c in cmd],
            cwd=REPO_ROOT,
            env=env if env is not None else tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout)

    proc = once()
    if proc.returncode != 0 and GLOO_EXIT_ABORT in proc.stderr and \
            'SIGABRT' in proc.stderr:
        proc = once()
    return proc


def data_root_options(data_root: str) -> list:
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
    ]


def describe(proc: subprocess.CompletedProcess) -> str:
    """The end of a finished process' output, for assertion messages."""
    return (f'exit code {proc.returncode}\n--- stdout (tail) ---\n'
            f'{proc.stdout[-3000:]}\n--- stderr (tail) ---\n'
            f'{proc.stderr[-3000:]}')


@pytest.fixture(scope='session')
def tools():
    """The helpers above, for the test modules of this folder."""
    return SimpleNamespace(
        repo_root=REPO_ROOT,
        config_dir=CONFIG_DIR,
        python=sys.executable,
        free_port=free_port,
        env=tool_env,
        run=run,
        data_root_options=data_root_options,
        describe=describe)
