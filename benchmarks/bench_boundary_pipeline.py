# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Cost of signed distance maps in the hand-bone training pipeline.

One generated 2048x2048 X-ray with 29 overlapping bones goes through the
1024x1024 train pipeline of ``configs/_base_/datasets/hand_bone.py``
(RandomResize to 1024, 1024² crop, flip, every Albu augmentation forced on)
in three variants, interleaved in one process (round ``r`` with seed ``r``
in each, OpenCV single-threaded as in mmengine's dataloader workers, CPU
time; see ``bench_hand_bone_pipeline.py``, whose helpers this reuses):

- ``packed``: the pipeline as trained today (the baseline);
- ``dist``: plus ``GenerateDistanceMaps`` before packing (exact maps);
- ``dist-clip``: plus ``GenerateDistanceMaps(max_distance=...)``.

Target: the pipeline with distance maps <= 1.3x the baseline's CPU time
(medians of per-round ratios are printed).

Example::

    python benchmarks/bench_boundary_pipeline.py --repeat 5
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

import cv2

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)
from bench_hand_bone_pipeline import REPO, _load_info, _run, all_on, prepare  # noqa: E402,E501,I001

from mmcv.transforms import Compose  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import TRANSFORMS  # noqa: E402

CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets', 'hand_bone.py')


def build(cfg: Config, dist_cfg) -> Compose:
    steps = []
    for t in all_on(cfg.train_pipeline):
        if t['type'] == 'PackMultiLabelSegInputs' and dist_cfg is not None:
            steps.append(TRANSFORMS.build(dist_cfg))
        steps.append(TRANSFORMS.build(t))
    return Compose(steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--max-distance', type=float, default=20.0)
    args = parser.parse_args()
    cv2.setNumThreads(0)
    init_default_scope('mmseg')
    cfg = Config.fromfile(CONFIG)
    variants = {
        'packed': None,
        'dist': dict(type='GenerateDistanceMaps'),
        'dist-clip': dict(type='GenerateDistanceMaps',
                          max_distance=args.max_distance),
    }
    pipelines = {k: build(cfg, v) for k, v in variants.items()}
    cpu = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        info = _load_info(prepare(tmp, 2048)['info'])
        for r in range(args.repeat + 1):
            for k, pipeline in pipelines.items():
                c0 = time.process_time()
                out = _run(pipeline, info, r)
                if r:
                    cpu[k].append(time.process_time() - c0)
    shape = tuple(out['data_samples'].gt_dist_map.data.shape)
    print(f'train pipeline of {osp.relpath(CONFIG, REPO)} on a 2048² '
          f'sample, crop {shape[1:]} x {shape[0]} classes, every '
          f'augmentation on; {args.repeat} interleaved rounds, CPU time')
    for k in variants:
        print(f'{k:<10} {statistics.median(cpu[k]) * 1000:7.0f} ms '
              f'(min {min(cpu[k]) * 1000:.0f})')
    for k in ('dist', 'dist-clip'):
        ratio = statistics.median(
            a / b for a, b in zip(cpu[k], cpu['packed']))
        extra = f' max_distance={args.max_distance:g}' \
            if k == 'dist-clip' else ' exact'
        print(f'{k} / packed:{extra}: {ratio:.2f}x CPU time (target <= '
              f'1.3x: {"ok" if ratio <= 1.3 else "MISSED"})')


if __name__ == '__main__':
    main()
