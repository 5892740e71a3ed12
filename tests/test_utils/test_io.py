# Copyright (c) mmseg_ext contributors. All rights reserved.
import json
import os
import stat

import cv2
import numpy as np
import pytest

from mmseg_ext.utils.io import atomic_path, dump_json_atomic, imwrite_atomic


def test_dump_json_atomic_round_trip(tmp_path):
    path = tmp_path / 'sub' / 'out.json'
    dump_json_atomic({'a': [1, 2]}, str(path))
    assert json.loads(path.read_text()) == {'a': [1, 2]}
    assert os.listdir(path.parent) == ['out.json']  # no temp file left


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    path = tmp_path / 'out.csv'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_path(str(path)) as tmp:
            with open(tmp, 'w') as f:
                f.write('partial')
            raise RuntimeError('writer died')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['out.csv']


def test_imwrite_atomic_round_trip(tmp_path):
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    path = str(tmp_path / 'label.png')
    imwrite_atomic(img, path)
    np.testing.assert_array_equal(
        cv2.imread(path, cv2.IMREAD_UNCHANGED), img)


def test_imwrite_atomic_unknown_extension_names_file(tmp_path):
    with pytest.raises(OSError, match='label.nope'):
        imwrite_atomic(np.zeros((2, 2), np.uint8),
                       str(tmp_path / 'label.nope'))
    assert os.listdir(tmp_path) == []


def test_atomic_files_get_default_permissions(tmp_path):
    # mkstemp makes 0600 files; the result must be readable like open()'s.
    path = str(tmp_path / 'out.json')
    dump_json_atomic({'a': 1}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
