# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Hand-built BraTS slice-cache entries in the contract format.

Writes what the converter writes for one case (source NIfTIs,
``image.npy``, ``label.npy``, ``index.json``) without depending on the
converter, and builds the data samples the BraTS val pipeline gives the
metric.
"""
import json
import os
import os.path as osp

import numpy as np
import torch

from mmseg_ext.datasets.brats.labels import labels_to_regions
from mmseg_ext.datasets.brats.nifti import write_nifti
from mmseg_ext.utils.multilabel import pack_multilabel

MODALITY_TAGS = ('flair', 't1', 't1ce', 't2')
AFFINE = np.array([[-1.0, 0, 0, 11.0], [0, -1.0, 0, 30.0], [0, 0, 1.0, 2.0],
                   [0, 0, 0, 1]])


def make_entry(root, case_id, labels, spacing=(1.0, 1.0, 1.0),
               slice_range=None, labelled=True, label_npy=True,
               brain=None, seed=0):
    """Write one case; return its index ENTRY (and update index.json).

    ``labels``: ``(X, Y, Z)`` BraTS 2020 labels (the ground truth).
    """
    x, y, z = labels.shape
    rng = np.random.default_rng(seed)
    if brain is None:
        brain = np.zeros(labels.shape, bool)
        brain[1:-1, 1:-1, 1:-1] = True
    brain = brain | (labels > 0)
    affine = AFFINE.copy()
    affine[:3, :3] = affine[:3, :3] * np.asarray(spacing)
    src_dir = osp.join(root, 'raw', case_id)
    os.makedirs(src_dir, exist_ok=True)
    sources, images = {}, []
    for c, tag in enumerate(MODALITY_TAGS):
        vol = np.where(brain, 100 + 10 * c + rng.random(labels.shape) * 20,
                       0).astype(np.float32)
        vol[labels == 4] += 50 * (tag == 't1ce')
        path = osp.join(src_dir, f'{case_id}_{tag}.nii.gz')
        write_nifti(path, vol, affine)
        sources[tag] = path
        images.append(vol)
    seg = None
    if labelled:
        seg = osp.join(src_dir, f'{case_id}_seg.nii.gz')
        write_nifti(seg, labels.astype(np.uint8), affine)
    sources['seg'] = seg
    out = osp.join(root, 'brats_slices')
    case_dir = osp.join(out, 'cases', case_id)
    os.makedirs(case_dir, exist_ok=True)
    image = np.stack(images, -1).transpose(2, 0, 1, 3).astype(np.float16)
    np.save(osp.join(case_dir, 'image.npy'), image)
    label_path = None
    if labelled and label_npy:
        regions = labels_to_regions(labels)
        label = np.stack([pack_multilabel(regions[..., k])
                          for k in range(z)])
        label_path = osp.join(case_dir, 'label.npy')
        np.save(label_path, label)
    zs = np.flatnonzero(brain.any(axis=(0, 1)))
    if slice_range is None:
        slice_range = [int(zs[0]), int(zs[-1]) + 1]
    entry = dict(
        case_id=case_id, shape=[x, y, z], affine=affine.tolist(),
        spacing=list(map(float, spacing)), slice_range=list(slice_range),
        tumour_slices=[int(k) for k in np.flatnonzero(
            (labels > 0).any(axis=(0, 1)))] if labelled else [],
        labelled=labelled, label_scheme='brats2020', sources=sources,
        image=osp.join(case_dir, 'image.npy'), label=label_path, stamps={})
    index_path = osp.join(out, 'index.json')
    index = dict(version=1, label_scheme='brats2020',
                 modalities=['FLAIR', 'T1', 'T1ce', 'T2'], cases={})
    if osp.isfile(index_path):
        with open(index_path) as f:
            index = json.load(f)
    index['cases'][case_id] = entry
    with open(index_path, 'w') as f:
        json.dump(index, f)
    return entry


def samples(entry, pred_regions):
    """Data samples (dicts, as mmengine's evaluator passes them) of every
    slice in ``slice_range``, predicting ``pred_regions`` (3, X, Y, Z)."""
    z0, z1 = entry['slice_range']
    out = []
    for z in range(z0, z1):
        out.append(dict(
            pred_sem_seg=dict(data=torch.from_numpy(
                np.ascontiguousarray(pred_regions[..., z]).astype(np.uint8))),
            case_id=entry['case_id'], slice_index=z, case_slices=z1 - z0,
            brats_case=entry, img_shape=tuple(entry['shape'][:2])))
    return out
