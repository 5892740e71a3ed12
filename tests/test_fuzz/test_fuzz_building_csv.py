# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Fuzzing ``read_rle_csv``: random and mutated CSVs give the rows a
pure-Python reference reads, or a CSVRowError (an InputError) naming the
file and line; never another exception."""
import os.path as osp
import tempfile

import pytest

from mmseg_ext.datasets.building_rle import CSVRowError, read_rle_csv
from mmseg_ext.utils.errors import InputError

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=80, deadline=None, derandomize=True)
HEADER = ['img_id', 'img_path', 'mask_rle']


def ref_read(data: bytes, folder: str):
    """Reference for files without quotes or CR: ``(rows, None)`` or
    ``(None, line)`` with the line the error should name (None: any)."""
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        return None, data.count(b'\n', 0, e.start) + 1
    if text.startswith('\ufeff'):
        text = text[1:]
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    if not lines:
        return None, 1
    header = [h.strip() for h in lines[0].split(',')]
    named = [h for h in header if h]
    if len(set(named)) != len(named) or \
            any(c not in header for c in HEADER[:2]):
        return None, 1
    has_rle = 'mask_rle' in header  # optional (rle_required=None)
    rows, seen = [], set()
    last = 1
    for number, line in enumerate(lines[1:], start=2):
        last = number
        fields = line.split(',')
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            return None, number
        img_id = fields[header.index('img_id')].strip()
        rel = fields[header.index('img_path')].strip()
        if not img_id or not rel or img_id in seen:
            return None, number
        seen.add(img_id)
        rle = fields[header.index('mask_rle')].strip() if has_rle else None
        if rle is not None and rle in ('', '-1'):
            rle = ''
        rows.append((img_id, osp.normpath(osp.join(folder, rel)), rle,
                     number))
    if not rows:
        return None, last + 1
    return (rows, has_rle), None


field_text = st.text(st.sampled_from(list('abAB09_-./ ') + ['é', '\u00a0']),
                     max_size=6)
row = st.tuples(field_text, field_text,
                st.sampled_from(['', '-1', '1 2', '3 4 10 2', ' 5 1 ']))


@st.composite
def csv_bytes(draw):
    rows = draw(st.lists(row, max_size=5))
    header = list(HEADER)
    if draw(st.booleans()):
        header = draw(st.permutations(header))
    lines = [','.join(header)]
    for r in rows:
        values = dict(zip(HEADER, r))
        lines.append(','.join(values[h] for h in header))
    text = '\n'.join(lines) + draw(st.sampled_from(['', '\n', '\n\n']))
    data = text.encode('utf-8')
    if draw(st.booleans()):
        data = b'\xef\xbb\xbf' + data
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(['insert', 'delete', 'dup_line']))
        pos = draw(st.integers(0, max(len(data), 1)))
        if kind == 'insert':
            piece = draw(st.sampled_from(
                [b',', b'\n', b'\xff', b'\xc3', b'img_id', b' ', b'"',
                 b'\r', b'\x00', b'mask_rle,']))
            data = data[:pos] + piece + data[pos:]
        elif kind == 'delete' and data:
            data = data[:pos % len(data)] + data[pos % len(data) + 1:]
        elif kind == 'dup_line':
            lines = data.split(b'\n')
            i = pos % len(lines)
            lines.insert(i, lines[i])
            data = b'\n'.join(lines)
    return data


@FUZZ
@given(csv_bytes())
def test_read_rle_csv_matches_the_reference_or_raises(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'train.csv')
        with open(path, 'wb') as f:
            f.write(data)
        try:
            rows, has_rle = read_rle_csv(path)
            got = [(r['img_id'], r['img_path'], r['mask_rle'], r['csv_line'])
                   for r in rows]
            error = None
        except CSVRowError as e:
            got, error = None, e
        # never another exception type: anything else fails the test here
        simple = b'"' not in data and b'\r' not in data
        if not simple:  # quoting / CR line ends: only the error contract
            if error is not None:
                assert isinstance(error, InputError) and error.path == path
            return
        expected, line = ref_read(data, tmp)
        if expected is None:
            assert error is not None, (data, got)
            assert error.path == path
            assert str(error).startswith(f'{path}: line ')
            if line is not None:
                assert error.where.startswith(f'line {line}'), (data, error)
        else:
            assert error is None, (data, str(error))
            assert (got, has_rle) == expected
