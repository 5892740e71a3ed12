# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Databases for the BraTS database tests: SQLite always, PostgreSQL where
a server binary exists.

PostgreSQL: ``MMSEG_EXT_TEST_PG_URL`` (set by ``.ci/run``, which starts a
server with ``tools/ci/postgres.sh``) or, when it is unset, a throwaway
server this session starts with the same script and stops at its end
(also after failures). Each session works in a database of its own,
dropped at the end, so parallel workers never share tables.
"""
import glob
import os
import os.path as osp
import shutil
import subprocess
import uuid

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PG_SCRIPT = osp.join(REPO, 'tools', 'ci', 'postgres.sh')


def _pg_binary():
    if shutil.which('initdb'):
        return shutil.which('initdb')
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    return found[-1] if found else None


def _parse_exports(text):
    out = {}
    for line in text.splitlines():
        if line.startswith('export ') and '=' in line:
            key, value = line[len('export '):].split('=', 1)
            out[key] = value
    return out


@pytest.fixture(scope='session')
def pg_server_url():
    """The URL of a running PostgreSQL server (see the module docstring)."""
    url = os.environ.get('MMSEG_EXT_TEST_PG_URL')
    if url:
        yield url
        return
    if _pg_binary() is None:
        pytest.skip('PostgreSQL tests skipped: no server binary (initdb) '
                    'on PATH or in /usr/lib/postgresql/*/bin, and '
                    'MMSEG_EXT_TEST_PG_URL is unset')
    proc = subprocess.run(['bash', PG_SCRIPT, 'start'], capture_output=True,
                          text=True, timeout=120)
    env = _parse_exports(proc.stdout)
    if proc.returncode != 0 or 'MMSEG_EXT_TEST_PG_URL' not in env:
        if env.get('MMSEG_EXT_TEST_PG_DIR'):
            subprocess.run(['bash', PG_SCRIPT, 'stop',
                            env['MMSEG_EXT_TEST_PG_DIR']], timeout=120)
        pytest.fail('tools/ci/postgres.sh start failed (exit '
                    f'{proc.returncode}): {proc.stderr.strip()[-2000:]}')
    try:
        yield env['MMSEG_EXT_TEST_PG_URL']
    finally:
        subprocess.run(['bash', PG_SCRIPT, 'stop',
                        env['MMSEG_EXT_TEST_PG_DIR']], capture_output=True,
                       timeout=120)


@pytest.fixture(scope='session')
def pg_url(pg_server_url):
    """A fresh database on the server for this session, dropped after it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    name = f'mmseg_ext_t_{os.getpid()}_{uuid.uuid4().hex[:8]}'
    admin = create_engine(pg_server_url, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE {name}'))
    try:
        yield make_url(pg_server_url).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=['sqlite', 'postgresql'])
def db_url(request, tmp_path):
    """A database URL with no tables: a new SQLite file, or the session's
    PostgreSQL database emptied."""
    if request.param == 'sqlite':
        return f'sqlite:///{tmp_path / "brats.sqlite"}'
    url = request.getfixturevalue('pg_url')
    from sqlalchemy import create_engine

    from mmseg_ext.apis.brats_db import metadata
    engine = create_engine(url)
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql('DROP TABLE IF EXISTS patients')
    engine.dispose()
    return url


def make_region(voxels, hemisphere='left', atlas=True, offset=0.0):
    """A REGION of the report format; empty when ``voxels`` is 0."""
    if not voxels:
        return dict(voxels=0, volume_cm3=0.0, components=0,
                    centroid_voxel=None, centroid_world=None,
                    bbox_voxel=None, hemisphere=None, atlas=None)
    return dict(
        voxels=voxels, volume_cm3=voxels / 1000.0, components=2,
        centroid_voxel=[10.5 + offset, 20.25, 30.0],
        centroid_world=[-10.5 - offset, 219.75, 30.0],
        bbox_voxel=[[1, 2, 3], [20, 40, 60]], hemisphere=hemisphere,
        atlas=[dict(label=1, name='left frontal', fraction=0.75),
               dict(label=3, name='left temporal', fraction=0.25)]
        if atlas else None)


def make_report(case_id, dice=0.8, hd95=2.5, metrics=True, et=True,
                hemisphere='left', atlas=True):
    """A valid report dict of the contract (BRATS_CONTRACT.md, section 3)."""
    return dict(
        case_id=case_id, shape=[240, 240, 155], spacing=[1.0, 1.0, 1.2],
        affine=[[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 239.0],
                [0.0, 0.0, 1.2, 0.0], [0.0, 0.0, 0.0, 1.0]],
        label_scheme='brats2020', source='prediction',
        metrics=dict(WT=dict(dice=dice, hd95=hd95),
                     TC=dict(dice=dice / 2, hd95=None),
                     ET=dict(dice=1.0, hd95=0.0)) if metrics else None,
        regions=dict(WT=make_region(5000, hemisphere, atlas),
                     TC=make_region(1200, hemisphere, atlas, 1.0),
                     ET=make_region(300 if et else 0, hemisphere, atlas,
                                    2.0)))


@pytest.fixture
def report_factory():
    """:func:`make_report` (a fixture, so other test folders reach it)."""
    return make_report
