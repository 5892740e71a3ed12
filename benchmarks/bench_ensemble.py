# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Throughput and peak memory of ``tools/ensemble.py`` over N images.

A ``--members``-member ensemble of saved probability maps (``--prob-dirs``,
so the models' cost does not dominate) of ``--size``\\ ² x ``--classes``
(default 3 x 2048² x 29, the hand-bone setting): per N of ``--images``
(default 10 and 50) the tool runs in a **fresh subprocess**, which reports
its own peak RSS (``VmHWM``, see :func:`peak_rss_mib`), so the figures are
per run. The
target is a peak RSS that does not grow with N (streaming).

Probability maps are smooth random fields (bilinear upsampling of a coarse
grid, like real network outputs, so the masks compress like real ones).
To save disk, ``--pool`` distinct maps are generated per member and
hard-linked to make N files (the files are then in the page cache: the
figures exclude cold disk reads).

``--procs 1 2`` also runs the tool multi-process (``torchrun
--standalone``, ``--launcher pytorch``; gloo on CPU, one thread per process)
and prints its speed-up over one process: of the tool's own time (the
slowest rank's, process-group set-up included) and of the wall time
(interpreter start and imports included); the peak RSS is then the largest
of the ranks'.

Example::

    python benchmarks/bench_ensemble.py --images 10 50
    python benchmarks/bench_ensemble.py --images 20 --procs 1 2
    python benchmarks/bench_ensemble.py --images 5 10 --size 1024 --split val
"""
import argparse
import json
import os
import os.path as osp
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, nargs='+', default=[10, 50])
    parser.add_argument('--size', type=int, default=2048)
    parser.add_argument('--classes', type=int, default=29)
    parser.add_argument('--members', type=int, default=3)
    parser.add_argument('--pool', type=int, default=5,
                        help='distinct maps per member (hard-linked to N)')
    parser.add_argument('--strategy', default='soft',
                        choices=('soft', 'hard', 'classwise'))
    parser.add_argument('--split', default='test', choices=('test', 'val'))
    parser.add_argument('--postprocess', action='store_true',
                        help='val: also select post-processing (2 passes)')
    parser.add_argument('--procs', type=int, nargs='+', default=[1],
                        help='process counts (> 1: torchrun, --launcher '
                        'pytorch)')
    parser.add_argument('--work-dir', help='default: a temporary folder')
    parser.add_argument('--child', nargs=argparse.REMAINDER,
                        help=argparse.SUPPRESS)
    return parser.parse_args()


def smooth_probs(rng, c, size):
    import cv2
    coarse = rng.normal(0, 3, (c, 16, 16)).astype(np.float32)
    out = np.empty((c, size, size), np.uint8)
    for k in range(c):
        field = cv2.resize(coarse[k] - 2.0, (size, size),
                           interpolation=cv2.INTER_CUBIC)
        out[k] = np.clip(np.rint(255 / (1 + np.exp(-field))), 0, 255)
    return out


def generate(work, args):
    """Pool maps per member, ground truth pool, in ``work/pool``."""
    sys.path.insert(0, REPO)
    from mmseg_ext.apis.ensemble import save_probs
    from mmseg_ext.utils.multilabel import pack_multilabel, write_packed_label
    rng = np.random.default_rng(0)
    pool = osp.join(work, 'pool')
    for m in range(args.members):
        for i in range(args.pool):
            path = osp.join(pool, f'm{m}', f'{i}.npy')
            if not osp.isfile(path):
                save_probs(path, smooth_probs(rng, args.classes, args.size))
    for i in range(args.pool):
        path = osp.join(pool, 'gt', f'{i}.png')
        if not osp.isfile(path):
            gt = smooth_probs(rng, args.classes, args.size) > 127
            write_packed_label(path, pack_multilabel(gt))
    if args.strategy == 'classwise':
        for m in range(args.members):
            scores = rng.random(args.classes).tolist()
            with open(osp.join(pool, f'scores{m}.json'), 'w') as f:
                json.dump(dict(dice=scores), f)
    return pool


def link_run(work, pool, n, args):
    run = osp.join(work, f'n{n}')
    shutil.rmtree(run, ignore_errors=True)
    for m in list(range(args.members)) + ['gt']:
        sub = 'gt' if m == 'gt' else f'm{m}'
        os.makedirs(osp.join(run, sub))
        ext = '.png' if m == 'gt' else '.npy'
        for i in range(n):
            os.link(osp.join(pool, sub, f'{i % args.pool}{ext}'),
                    osp.join(run, sub, f'{i:05d}{ext}'))
    return run


def peak_rss_mib() -> float:
    """This process's peak RSS: ``VmHWM`` on Linux (per address space, so
    not inflated by the parent: ``getrusage``'s ``ru_maxrss`` keeps the
    pre-``exec`` high-water mark of the forked parent copy), else
    ``getrusage``."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(argv):
    """Run the tool in this process; print time and peak RSS as JSON."""
    sys.path.insert(0, REPO)
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import ensemble as tool  # tools/ensemble.py
    import_mib = peak_rss_mib()
    start = time.perf_counter()
    tool.main(argv)
    seconds = time.perf_counter() - start
    peak_mib = peak_rss_mib()
    print('BENCH ' + json.dumps(
        dict(seconds=seconds, peak_rss_mib=peak_mib,
             import_rss_mib=import_mib)), flush=True)


def run_child(argv, procs, n):
    """Run the tool on ``procs`` processes; its figures as a dict."""
    cmd = [sys.executable, osp.abspath(__file__), '--child', *argv]
    if procs > 1:
        cmd = [
            sys.executable, '-m', 'torch.distributed.run', '--standalone',
            f'--nproc_per_node={procs}', osp.abspath(__file__), '--child',
            *argv, '--launcher', 'pytorch'
        ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f'N={n}, {procs} process(es) failed:\n'
                 f'{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}')
    lines = [x for x in proc.stdout.splitlines() if x.startswith('BENCH')]
    ranks = [json.loads(x[len('BENCH '):]) for x in lines]
    res = dict(
        seconds=max(r['seconds'] for r in ranks),
        peak_rss_mib=max(r['peak_rss_mib'] for r in ranks),
        import_rss_mib=max(r['import_rss_mib'] for r in ranks),
        wall_s=wall, images=n, procs=procs)
    res['images_per_s'] = n / res['seconds']
    return res


def main():
    args = parse_args()
    if args.child is not None:
        child(args.child)
        return
    work = args.work_dir or tempfile.mkdtemp(prefix='bench_ensemble_')
    print(f'{args.members} members x {args.size}x{args.size} x '
          f'{args.classes} classes, {args.strategy}, split {args.split}'
          f'{" + post-processing" if args.postprocess else ""}; '
          f'generating {args.pool} maps per member in {work} ...',
          flush=True)
    pool = generate(work, args)
    results = []
    for n in args.images:
        run = link_run(work, pool, n, args)
        argv = ['--prob-dirs'] + [
            osp.join(run, f'm{m}') for m in range(args.members)
        ] + ['--strategy', args.strategy, '--split', args.split,
             '--out-dir', osp.join(run, 'out')]
        if args.strategy == 'classwise':
            argv += ['--scores'] + [
                osp.join(pool, f'scores{m}.json')
                for m in range(args.members)
            ]
        if args.split == 'val':
            argv += ['--gt-dir', osp.join(run, 'gt')]
            if args.postprocess:
                argv += ['--postprocess']
        else:
            argv += ['--submission', 'hand_bone', '--out',
                     osp.join(run, 'submission.csv')]
        for procs in args.procs:
            res = run_child(argv, procs, n)
            results.append(res)
            print(f'N={n:4d}, {procs} process(es): {res["seconds"]:7.1f} s, '
                  f'{res["images_per_s"]:.3f} images/s, wall '
                  f'{res["wall_s"]:.1f} s, peak RSS '
                  f'{res["peak_rss_mib"]:.0f} MiB (after imports: '
                  f'{res["import_rss_mib"]:.0f} MiB)', flush=True)
            if procs != args.procs[0]:
                base = next(r for r in results if r['images'] == n
                            and r['procs'] == args.procs[0])
                print(f'        {procs} vs {args.procs[0]} process(es): '
                      f'{base["seconds"] / res["seconds"]:.2f}x speed-up of '
                      'the tool (process group set-up included), '
                      f'{base["wall_s"] / res["wall_s"]:.2f}x of the wall '
                      'time (imports included)', flush=True)
        shutil.rmtree(run, ignore_errors=True)
    results = [r for r in results if r['procs'] == args.procs[0]]
    if len(results) > 1:
        rss = [r['peak_rss_mib'] for r in results]
        print(f'peak RSS from N={results[0]["images"]} to '
              f'N={results[-1]["images"]}: {rss[0]:.0f} -> {rss[-1]:.0f} MiB '
              f'({(rss[-1] - rss[0]) / rss[0] * 100:+.1f}%)')
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
