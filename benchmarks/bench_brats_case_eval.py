# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Whole-case BraTS evaluation time, against reading the case's NIfTI files.

Generated 240 x 240 x 155 cases (:func:`generate_brats`, ``.nii.gz``) get a
slice cache in the converter's format (``image.npy``, ``label.npy``,
``index.json``), and a prediction: the ground-truth regions shifted by a
voxel with a few speckles. Each case's 155 slice predictions go through
:class:`BraTSMetric` ``process`` (one case in memory, finished when its
last slice arrives) with every output on: reassembly from the packed
slices, Dice / HD95 of 3 regions, NIfTI prediction, tumour report (JSON),
3 overlay PNGs; then ``compute_metrics`` (CSVs).

Printed per case: the total and a breakdown (functions timed by wrapping
them), as a ratio to the baseline: reading the case's 4 modalities and its
label with :func:`mmseg_ext.datasets.brats.read_brats_case` (what any
evaluation that starts from the NIfTI files pays at least).

Measured (2 shared cores, 2 cases, 129 slices each): 1.03 s per case
against 1.23 s to read the NIfTI files, 0.84x; metrics 0.32 s (a speckled
prediction crops to the whole volume), reassembly + packing 0.19 s,
overlays 0.15 s, NIfTI write 0.15 s, report 0.12 s, ground truth (label.npy)
0.10 s.

Example::

    python benchmarks/bench_brats_case_eval.py --cases 2
"""
import argparse
import json
import os
import os.path as osp
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch

import mmseg_ext.datasets.brats.nifti as nifti_module
import mmseg_ext.evaluation.metrics.brats_metric as metric_module
import mmseg_ext.visualization.brats_overlay as overlay_module
from mmseg_ext.datasets.brats import (find_brats_cases, labels_to_regions,
                                      read_brats_case)
from mmseg_ext.datasets.generators.brats import generate_brats
from mmseg_ext.utils.multilabel import pack_multilabel

SHAPE = (240, 240, 155)
TIMES = defaultdict(float)


def _timed(owner, name, key):
    func = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            TIMES[key] += time.perf_counter() - t0

    setattr(owner, name, wrapper)


def _cache(root, out, case):
    """The converter's slice-cache files for one case (contract format)."""
    data = read_brats_case(case)
    image = data['image']  # (C, X, Y, Z)
    brain = (image != 0).any(0)
    for c in range(image.shape[0]):
        vals = image[c][brain]
        image[c][brain] = (vals - vals.mean()) / (vals.std() + 1e-8)
    case_dir = osp.join(out, 'cases', case.case_id)
    os.makedirs(case_dir, exist_ok=True)
    np.save(osp.join(case_dir, 'image.npy'),
            image.transpose(3, 1, 2, 0).astype(np.float16))
    regions = labels_to_regions(data['seg'])
    np.save(osp.join(case_dir, 'label.npy'), np.stack(
        [pack_multilabel(regions[..., z]) for z in range(SHAPE[2])]))
    zs = np.flatnonzero(brain.any((0, 1)))
    sources = dict(zip(('flair', 't1', 't1ce', 't2'), case.images))
    sources['seg'] = case.seg
    return dict(
        case_id=case.case_id, shape=list(SHAPE),
        affine=data['affine'].tolist(), spacing=list(data['spacing']),
        slice_range=[int(zs[0]), int(zs[-1]) + 1], tumour_slices=[],
        labelled=True, label_scheme='brats2020', sources=sources,
        image=osp.join(case_dir, 'image.npy'),
        label=osp.join(case_dir, 'label.npy'), stamps={}), regions


def _samples(entry, regions, rng):
    pred = np.roll(regions, 1, axis=1)
    pred[0] |= rng.random(SHAPE) < 1e-5
    z0, z1 = entry['slice_range']
    return [
        dict(pred_sem_seg=dict(data=torch.from_numpy(
            np.ascontiguousarray(pred[..., z]).astype(np.uint8))),
             case_id=entry['case_id'], slice_index=z, case_slices=z1 - z0,
             brats_case=entry) for z in range(z0, z1)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='bench_brats_eval_') as tmp:
        generate_brats(osp.join(tmp, 'raw'), args.cases, SHAPE,
                       seed=args.seed, ext='.nii.gz')
        cases = find_brats_cases(osp.join(tmp, 'raw'))
        out = osp.join(tmp, 'brats_slices')
        prepared = [_cache(tmp, out, c) for c in cases]
        with open(osp.join(out, 'index.json'), 'w') as f:
            json.dump(dict(version=1, label_scheme='brats2020',
                           modalities=['FLAIR', 'T1', 'T1ce', 'T2'],
                           cases={e['case_id']: e for e, _ in prepared}), f)
        rng = np.random.default_rng(args.seed)
        samples = [_samples(e, r, rng) for e, r in prepared]

        t_read = 0.0
        for case in cases:
            t0 = time.perf_counter()
            read_brats_case(case)
            t_read += time.perf_counter() - t0

        _timed(metric_module, 'compute_region_metrics', 'metrics')
        _timed(metric_module.BraTSMetric, '_ground_truth', 'ground truth')
        _timed(nifti_module, 'write_nifti', 'NIfTI')
        _timed(metric_module, 'tumour_report', 'report')
        _timed(metric_module, 'write_tumour_report', 'report')
        _timed(overlay_module, 'write_brats_overlays', 'overlays')
        metric = metric_module.BraTSMetric(out_dir=osp.join(tmp, 'out'))
        metric.dataset_meta = {}
        t0 = time.perf_counter()
        for case_samples in samples:
            for i in range(0, len(case_samples), 8):  # batches of 8
                metric.process({}, case_samples[i:i + 8])
        t_process = time.perf_counter() - t0
        t0 = time.perf_counter()
        metric.compute_metrics(metric.results)
        t_compute = time.perf_counter() - t0

    n = len(cases)
    total = (t_process + t_compute) / n
    read = t_read / n
    parts = dict(TIMES)
    parts['reassembly + packing'] = t_process - sum(parts.values())
    parts['compute_metrics (CSVs)'] = t_compute
    print(f'{n} case(s) {SHAPE}, {len(samples[0])} slices each; baseline: '
          f'read_brats_case (4 modalities + seg, .nii.gz) {read:.3f} s/case')
    print(f'whole-case evaluation {total:.3f} s/case = {total / read:.2f}x '
          'the NIfTI read')
    for key, value in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f'  {key:24s} {value / n:.3f} s/case  '
              f'({value / n / read:.2f}x read)')


if __name__ == '__main__':
    main()
