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
    if proc.returncode == 3:  # no binaries / no user to run them as
        pytest.skip('PostgreSQL tests skipped: '
                    f'{" ".join(proc.stderr.split())}')
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
