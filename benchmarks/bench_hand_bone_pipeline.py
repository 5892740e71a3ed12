# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Time and memory of the hand-bone training pipeline on a 2048x2048 sample.

One generated 2048x2048 X-ray with 29 overlapping bone polygons goes through
the train pipeline of a hand-bone dataset config (default: the full
2048x2048 one; every augmentation forced on, ``p=1``, so each run does all
the work) in three variants:

- ``image``: the same transforms without any label (the floor);
- ``packed`` (ours): ``LoadMultiLabelAnnotations`` reads the converter's
  packed 16-bit PNG, the transforms move a ``(H, W, 3)`` uint16 map, and
  ``PackMultiLabelSegInputs`` gives ``(2, H, W)`` int16;
- ``naive``: the usual 29-channel ``(H, W, 29)`` uint8 mask through the
  same transforms (albumentations processes it 4 channels at a time),
  loaded from a ``.npy`` of the pre-rasterised masks (``naive``) or, as the
  competition's baseline dataset does, rasterised from the JSON on every
  load (``naive-json``), then packed as a ``(29, H, W)`` uint8 tensor.

Timing: one process runs the variants interleaved, ``--repeat`` rounds
after a warm-up round, round ``r`` with seed ``r`` in every variant (same
random choices), and reports CPU time (``process_time``, OpenCV
single-threaded as in mmengine's dataloader workers; steadier than wall time
on a shared machine) and wall time; ratios are medians of per-round ratios.
Memory: one fresh process per variant, peak resident set size over the
state before the samples (``ru_maxrss``, includes OpenCV's buffers) and the
``tracemalloc`` peak (NumPy and Python allocations) of one sample. Targets:
packed <= 1.5x image, and naive >= 5x packed on the label's own cost (the
time above ``image``; the shared image work bounds the overall ratio).

Example::

    python benchmarks/bench_hand_bone_pipeline.py
    python benchmarks/bench_hand_bone_pipeline.py \
        --dataset-config configs/_base_/datasets/hand_bone.py  # 1024 input
"""
import argparse
import copy
import json
import os
import os.path as osp
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

import cv2
import torch
from mmcv.transforms import Compose
from mmengine import Config
from mmengine.registry import init_default_scope
from mmseg.registry import TRANSFORMS

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import (HAND_BONE_CLASSES,
                                                     generate_hand_bone,
                                                     hand_bone_masks)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets',
                          'hand_bone_2048x2048.py')
VARIANTS = ('image', 'packed', 'naive', 'naive-json')
C = len(HAND_BONE_CLASSES)


class NaiveLoad29:
    """``(H, W, 29)`` uint8 masks: from a ``.npy`` or rasterised from JSON
    (the competition baseline's ``__getitem__``)."""

    def __init__(self, from_json: bool) -> None:
        self.from_json = from_json

    def __call__(self, results: dict) -> dict:
        if self.from_json:
            with open(results['json_path']) as f:
                anns = json.load(f)['annotations']
            h, w = results['img'].shape[:2]
            label = np.zeros((h, w, C), np.uint8)
            for ann in anns:
                k = HAND_BONE_CLASSES.index(ann['label'])
                mask = np.zeros((h, w), np.uint8)
                cv2.fillPoly(mask, [np.array(ann['points'], np.int32)], 1)
                label[..., k] = mask
        else:
            label = np.load(results['npy_path'])
        results['gt_seg_map'] = label
        results['seg_fields'] = ['gt_seg_map']
        return results


class NaivePack29:
    """Image to ``(3, H, W)``, masks to ``(29, H, W)`` uint8 tensors."""

    def __call__(self, results: dict) -> dict:
        img = torch.from_numpy(
            np.ascontiguousarray(results['img'].transpose(2, 0, 1)))
        gt = torch.from_numpy(
            np.ascontiguousarray(results['gt_seg_map'].transpose(2, 0, 1)))
        return dict(inputs=img, gt=gt)


def all_on(transforms: list) -> list:
    """Force every random transform on (p=1, prob=1)."""
    out = []
    for t in transforms:
        t = dict(t)
        if t['type'] == 'Albu':
            t['transforms'] = [dict(a, p=1.0) for a in t['transforms']]
        if 'prob' in t:
            t['prob'] = 1.0
        out.append(t)
    return out


def build_pipeline(cfg: Config, variant: str) -> Compose:
    steps = []
    for t in all_on(cfg.train_pipeline):
        kind = t['type']
        if kind == 'LoadMultiLabelAnnotations':
            if variant == 'packed':
                steps.append(TRANSFORMS.build(t))
            elif variant.startswith('naive'):
                steps.append(NaiveLoad29(from_json=variant == 'naive-json'))
        elif kind == 'PackMultiLabelSegInputs' and \
                variant.startswith('naive'):
            steps.append(NaivePack29())
        else:
            steps.append(TRANSFORMS.build(t))
    return Compose(steps)


def rss_mib() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def _load_info(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _run(pipeline: Compose, info: dict, seed: int):
    random.seed(seed)
    np.random.seed(seed)
    return pipeline(copy.deepcopy(info))


def time_variants(args) -> dict:
    """Worker: time every variant in this process, interleaved.

    Round ``r`` runs each variant once with seed ``r`` (same random
    choices), so load changes on a shared machine hit all variants alike.
    CPU time (``process_time``; OpenCV single-threaded) is the main figure,
    wall time is also kept.
    """
    cv2.setNumThreads(0)  # as in mmengine's dataloader workers
    init_default_scope('mmseg')
    cfg = Config.fromfile(args.dataset_config)
    info = _load_info(args.info)
    pipelines = {v: build_pipeline(cfg, v) for v in args.variants}
    cpu = {v: [] for v in args.variants}
    wall = {v: [] for v in args.variants}
    for r in range(args.repeat + 1):
        for v, pipeline in pipelines.items():
            c0, w0 = time.process_time(), time.perf_counter()
            _run(pipeline, info, r)
            if r:  # round 0 warms up
                cpu[v].append(time.process_time() - c0)
                wall[v].append(time.perf_counter() - w0)
    return dict(cpu=cpu, wall=wall)


def measure_memory(args) -> dict:
    """Worker: peak memory of one variant in this (fresh) process."""
    cv2.setNumThreads(0)
    init_default_scope('mmseg')
    cfg = Config.fromfile(args.dataset_config)
    pipeline = build_pipeline(cfg, args.worker)
    info = _load_info(args.info)
    base_rss = rss_mib()
    for r in range(2):
        _run(pipeline, info, r)
    # ru_maxrss is the process' peak (imports peak well below a 2048
    # sample's), so this is the samples' peak over the state before them.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    _run(pipeline, info, 0)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dict(peak_rss_mib=peak - base_rss, traced_peak_mib=traced / 2**20)


def _worker(args, mode: str, variant: str = None) -> dict:
    cmd = [sys.executable, __file__, '--worker', mode, '--info', args.info,
           '--dataset-config', args.dataset_config, '--repeat',
           str(args.repeat), '--variants', *args.variants]
    if variant is not None:
        cmd += ['--variant', variant]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f'{mode} {variant or ""} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(root: str, size: int) -> dict:
    """Generate one patient at ``size``, convert it, write the naive npy."""
    start = time.perf_counter()
    generate_hand_bone(root, num_train_ids=2, num_test_ids=0, size=size,
                       seed=0)
    gen_s = time.perf_counter() - start
    start = time.perf_counter()
    summary = convert_hand_bone(root, num_folds=2, show_progress=False)
    conv_s = (time.perf_counter() - start) / len(summary['converted'])
    rel = summary['converted'][0]
    img_path = osp.join(root, 'train', 'DCM', rel)
    json_path = osp.join(root, 'train', 'outputs_json', rel[:-4] + '.json')
    with open(json_path) as f:
        polys = {a['label']: np.array(a['points'], np.int32)
                 for a in json.load(f)['annotations']}
    masks = hand_bone_masks(polys, (size, size))
    npy_path = osp.join(root, 'naive_masks.npy')
    np.save(npy_path, np.ascontiguousarray(
        masks.transpose(1, 2, 0)).astype(np.uint8))
    info = dict(
        img_path=img_path,
        seg_map_path=osp.join(root, 'train', 'packed_labels', rel),
        json_path=json_path,
        npy_path=npy_path,
        num_classes=C,
        reduce_zero_label=False,
        label_map=None,
        seg_fields=[])
    info_path = osp.join(root, 'info.json')
    with open(info_path, 'w') as f:
        json.dump(info, f)
    sizes = dict(
        packed_png_kib=osp.getsize(info['seg_map_path']) / 1024,
        naive_npy_kib=osp.getsize(npy_path) / 1024,
        json_kib=osp.getsize(json_path) / 1024)
    return dict(info=info_path, generate_s=gen_s, convert_s_per_image=conv_s,
                **sizes)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset-config', default=DEFAULT_CONFIG,
                        help='hand-bone dataset config (its train_pipeline)')
    parser.add_argument('--size', type=int, default=2048,
                        help='side of the generated X-ray')
    parser.add_argument('--repeat', type=int, default=7,
                        help='timed runs per variant (after one warm-up)')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        choices=VARIANTS)
    parser.add_argument('--worker', choices=('time', 'memory'),
                        help=argparse.SUPPRESS)
    parser.add_argument('--variant', choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument('--info', help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.worker == 'time':
        print(json.dumps(time_variants(args)))
        return
    if args.worker == 'memory':
        args.worker = args.variant
        print(json.dumps(measure_memory(args)))
        return
    if 'image' not in args.variants:
        args.variants = ['image'] + list(args.variants)
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare(tmp, args.size)
        args.info = prep['info']
        print(f'sample: {args.size}x{args.size}, {C} classes; generate '
              f'{prep["generate_s"]:.2f} s (4 images), convert '
              f'{prep["convert_s_per_image"] * 1000:.0f} ms/image; files: '
              f'packed PNG {prep["packed_png_kib"]:.0f} KiB, naive npy '
              f'{prep["naive_npy_kib"]:.0f} KiB, JSON '
              f'{prep["json_kib"]:.0f} KiB')
        print(f'pipeline: train_pipeline of '
              f'{osp.relpath(args.dataset_config, REPO)}, every augmentation '
              f'on; {args.repeat} interleaved rounds in one process, OpenCV '
              'single-threaded; memory: one process per variant')
        timing = _worker(args, 'time')
        memory = {v: _worker(args, 'memory', v) for v in args.variants}
    cpu, wall = timing['cpu'], timing['wall']
    print(f'{"variant":<12}{"CPU ms":>8}{"(min)":>7}{"wall ms":>9}'
          f'{"peak RSS +MiB":>15}{"traced peak MiB":>17}')
    for v in args.variants:
        print(f'{v:<12}{statistics.median(cpu[v]) * 1000:>8.0f}'
              f'{min(cpu[v]) * 1000:>7.0f}'
              f'{statistics.median(wall[v]) * 1000:>9.0f}'
              f'{memory[v]["peak_rss_mib"]:>15.0f}'
              f'{memory[v]["traced_peak_mib"]:>17.0f}')

    def ratio(a, b, over_image=False):
        """Median over rounds of a's CPU time over b's (same round)."""
        vals = []
        for i in range(len(cpu['image'])):
            num, den = cpu[a][i], cpu[b][i]
            if over_image:
                num -= cpu['image'][i]
                den -= cpu['image'][i]
            vals.append(num / max(den, 1e-9))
        return statistics.median(vals)

    def mem(a, b, key='peak_rss_mib'):
        return memory[a][key] / max(memory[b][key], 1e-9)

    if 'packed' in cpu:
        r = ratio('packed', 'image')
        print(f'packed / image: {r:.2f}x CPU time (target <= 1.5x: '
              f'{"ok" if r <= 1.5 else "MISSED"}); peak RSS '
              f'{mem("packed", "image"):.2f}x')
        for naive in ('naive', 'naive-json'):
            if naive not in cpu:
                continue
            total = ratio(naive, 'packed')
            label = ratio(naive, 'packed', over_image=True)
            print(f'{naive} / packed: {total:.2f}x CPU time overall, '
                  f'{label:.1f}x on the label work (time above image; '
                  f'target >= 5x: {"ok" if label >= 5 else "MISSED"}); '
                  f'peak RSS {mem(naive, "packed"):.2f}x, traced '
                  f'{mem(naive, "packed", "traced_peak_mib"):.2f}x')


if __name__ == '__main__':
    main()
