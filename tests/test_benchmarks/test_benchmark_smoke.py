# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The benchmarks that CI can afford run in their reduced CPU form.

They print figures; the tests only check that the scripts still run on the
current code and print the lines the README quotes (no timing asserted).
"""
import os
import os.path as osp
import re
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _run(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1',
               MPLBACKEND='Agg')
    proc = subprocess.run([sys.executable] + args, cwd=str(tmp_path),
                          env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_step_gpu_cpu_smoke(tmp_path):
    out = _run([osp.join(REPO, 'benchmarks', 'bench_step_gpu.py'),
                '--cpu-smoke', '--models', 'segformer-b0'], tmp_path)
    assert out.startswith('CPU smoke (reduced size; no GPU figures): 64x64')
    lines = [ln for ln in out.splitlines() if ln.startswith('segformer-b0')]
    assert len(lines) == 1  # fp32 only: no AMP on the CPU
    assert re.search(r'time ours / mmseg \d+\.\d\dx', lines[0])


def test_imbalance_efficacy_quick(tmp_path):
    out = _run([osp.join(REPO, 'benchmarks', 'bench_imbalance_efficacy.py'),
                '--quick', '--out', str(tmp_path / 'eff')], tmp_path)
    assert '| ce | ' in out
    assert '| ce + inverse_freq + rcs + copy_paste | ' in out
    assert (tmp_path / 'eff' / 'efficacy.json').is_file()
    assert (tmp_path / 'eff' / 'efficacy.png').is_file()
