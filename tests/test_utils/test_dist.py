# Copyright (c) mmseg_ext contributors. All rights reserved.
"""``mmseg_ext.utils.dist``: single-process behaviour, and 2 CPU processes
(gloo, ``torchrun --standalone``) for the collectives and the gathering of
``SubmissionSpool`` rows."""
import csv
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from mmseg_ext.apis.ensemble import SubmissionSpool
from mmseg_ext.utils.dist import (chunk_bounds, gather_chunks,
                                  run_on_main, shard, sum_over_ranks,
                                  sync_errors)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_shard_covers_every_position_once():
    parts = [list(shard(7, r, 3)) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert list(shard(5)) == [0, 1, 2, 3, 4]  # no process group: all
    assert list(shard(1, 1, 2)) == []
    with pytest.raises(ValueError, match='rank'):
        shard(3, 2, 2)


def test_chunk_bounds():
    assert chunk_bounds([4, 4, 4, 4, 4], max_bytes=8) == [(0, 2), (2, 4),
                                                          (4, 5)]
    # a record larger than the limit travels alone
    assert chunk_bounds([3, 20, 3], max_bytes=8) == [(0, 1), (1, 2), (2, 3)]
    assert chunk_bounds([], max_bytes=8) == []


def test_single_process_is_local():
    got = []
    gather_chunks(3, lambda i: [i] * 2, lambda src, c: got.append((src, c)))
    assert got == [(0, [0, 0]), (0, [1, 1]), (0, [2, 2])]
    assert sum_over_ranks(5) == 5 and sum_over_ranks(None) is None
    assert run_on_main(lambda: 'x') == 'x'
    sync_errors(None)
    with pytest.raises(KeyError, match='mine'):
        sync_errors(KeyError('mine'))


SCRIPT = '''
import json, os, sys
import numpy as np
from mmseg_ext.apis.ensemble import SubmissionSpool
from mmseg_ext.engine.launch import init_tool_distributed, teardown_distributed
from mmseg_ext.utils.dist import (RankError, gather_chunks, run_on_main,
                                  shard, sum_over_ranks, sync_errors)

out = sys.argv[1]
rank, world, device = init_tool_distributed('pytorch')
res = dict(world=world, device=device, shard=list(shard(5)))
# rank 0 offers 1 chunk, rank 1 offers 3 (uneven rounds)
got = []
gather_chunks(1 + 2 * rank, lambda i: [rank, i],
              lambda src, chunk: got.append([src, chunk]))
res['gathered'] = got
res['sum'] = sum_over_ranks(np.array([1, 2]) * (rank + 1)).tolist()
res['sum_none'] = sum_over_ranks(None if rank else 4)
res['main'] = run_on_main(lambda: 'from rank 0')
try:
    sync_errors(ValueError('bad file x.npy') if rank == 1 else None)
except RankError as e:
    res['sync'] = ['RankError', str(e)]
except ValueError as e:
    res['sync'] = ['ValueError', str(e)]
try:
    run_on_main(lambda: 1 / 0)
except RankError as e:
    res['main_fail'] = ['RankError', str(e)]
except ZeroDivisionError as e:
    res['main_fail'] = ['ZeroDivisionError', str(e)]
# building rows of interleaved positions, hand-bone rows by name
for kind in ('building', 'hand_bone'):
    spool = SubmissionSpool(kind, os.path.join(out, kind + '.csv'),
                            ['c0', 'c1'])
    for pos in shard(5):
        if kind == 'building':
            spool.add(f'img{pos}', f'{pos} 1', key=pos)
        else:
            spool.add(f'z{4 - pos}.png', [f'{pos} 1', ''])
    spool.gather_to_main(max_bytes=16)  # several chunks per rank
    if rank == 0:
        spool.close()
    else:
        spool.discard()
with open(os.path.join(out, f'rank{rank}.json'), 'w') as f:
    json.dump(res, f)
teardown_distributed()
'''


def test_two_processes(tmp_path):
    script = tmp_path / 'dist_script.py'
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    proc = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--standalone',
        '--nproc_per_node=2',
        str(script),
        str(tmp_path)
    ],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    r0, r1 = (
        json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2))
    assert r0['world'] == 2 and r0['device'] == 'cpu'
    assert r0['shard'] == [0, 2, 4] and r1['shard'] == [1, 3]
    # rounds: (r0 c0, r1 c0), (r1 c1), (r1 c2); rank 0 sees them in order
    assert r0['gathered'] == [[0, [0, 0]], [1, [1, 0]], [1, [1, 1]],
                              [1, [1, 2]]]
    assert r1['gathered'] == []
    assert r0['sum'] == r1['sum'] == [3, 6]
    assert r0['sum_none'] == r1['sum_none'] == 4
    assert r0['main'] == r1['main'] == 'from rank 0'
    assert r1['sync'] == ['ValueError', 'bad file x.npy']
    assert r0['sync'] == [
        'RankError', 'rank 1 failed: ValueError: bad file x.npy'
    ]
    assert r0['main_fail'][0] == 'ZeroDivisionError'
    assert r1['main_fail'] == [
        'RankError', 'rank 0 failed: ZeroDivisionError: division '
        'by zero'
    ]
    with open(tmp_path / 'building.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows == [['img_id', 'mask_rle']] + [[f'img{i}', f'{i} 1']
                                               for i in range(5)]
    with open(tmp_path / 'hand_bone.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['image_name', 'class', 'rle']
    names = [f'z{i}.png' for i in range(5)]
    assert rows[1:] == [[n, c, f'{4 - int(n[1])} 1' if c == 'c0' else '']
                        for n in names for c in ('c0', 'c1')]
    # no spool or temporary file is left beside the CSVs
    assert sorted(os.listdir(tmp_path)) == [
        'building.csv', 'dist_script.py', 'hand_bone.csv', 'rank0.json',
        'rank1.json'
    ]


def test_spool_building_key_orders_rows(tmp_path):
    spool = SubmissionSpool('building', str(tmp_path / 'b.csv'), [])
    spool.add('b', '1 2', key=1)
    spool.add('a', '', key=0)
    assert spool.records(0, 2) == [(1, 'b', 'b,1 2\n'), (0, 'a', 'a,\n')]
    spool.close()
    rows = list(csv.reader(open(tmp_path / 'b.csv', newline='')))
    assert rows == [['img_id', 'mask_rle'], ['a', '-1'], ['b', '1 2']]
