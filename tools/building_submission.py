# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Write the building competition's submission CSV (``img_id,mask_rle``).

From a model (one pass over the config's test dataloader, DDP-capable; the
rows are gathered across ranks and rank 0 writes one CSV)::

    python tools/building_submission.py CONFIG CHECKPOINT \\
        --out submission.csv [--threshold 0.45] [--min-area 20] \\
        [--cfg-options ...] [--launcher pytorch]

From saved masks (``{img_id}.png``: nonzero is building; or probability
maps ``.png`` uint8 0-255 / ``.npy`` float with ``--threshold``)::

    python tools/building_submission.py --pred-dir preds/ \\
        --test-csv data/building/test.csv --out submission.csv

Either way every row of ``test.csv`` is written in its order, ``-1`` for an
empty mask (and, with a warning, for a row without prediction); the file is
written atomically.
"""
import argparse
import errno
import os
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401  (registers modules, applies compat)
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

import cv2
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from mmseg_ext.datasets.building_rle import read_rle_csv
from mmseg_ext.engine.launch import (drop_train_only_hooks,
                                     setup_cpu_distributed,
                                     teardown_distributed)
from mmseg_ext.engine.tool_cli import (add_debug_arg, load_config,
                                       note_partial, tool_main)
from mmseg_ext.evaluation.metrics.building_dice_metric import \
    write_submission_csv
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.rle import rle_encode


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the building submission CSV (img_id,mask_rle)')
    parser.add_argument('config', nargs='?', help='model config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file')
    parser.add_argument(
        '--out', default='submission.csv', help='submission CSV to write')
    parser.add_argument(
        '--threshold',
        type=float,
        help='probability threshold (model.test_cfg.threshold; with '
        '--pred-dir, for probability maps)')
    parser.add_argument(
        '--min-area',
        type=int,
        help='remove 8-connected components smaller than this '
        '(model.test_cfg.min_area)')
    parser.add_argument(
        '--test-csv',
        help='test CSV (img_id,img_path); default: the ann_file of the '
        "config's test dataset")
    parser.add_argument(
        '--pred-dir',
        help='folder of saved masks {img_id}.png/.npy instead of a model')
    parser.add_argument(
        '--work-dir', help='work dir of the test run (logs)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (see tools/test.py)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.pred_dir is None and (args.config is None
                                  or args.checkpoint is None):
        parser.error('give CONFIG and CHECKPOINT, or --pred-dir')
    if args.pred_dir is not None and args.test_csv is None and \
            args.config is None:
        parser.error('--pred-dir needs --test-csv (or a CONFIG to take the '
                     'test CSV from)')
    if args.threshold is not None and not 0 <= args.threshold < 1:  # NaN
        parser.error(f'--threshold should be in [0, 1), got {args.threshold}')
    if args.min_area is not None and args.min_area < 0:
        parser.error(f'--min-area should be >= 0, got {args.min_area}')
    return args


def test_csv_from_config(cfg: Config) -> str:
    """Absolute path of the test dataset's CSV (``data_root/ann_file``)."""
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset and 'ann_file' not in dataset:
        dataset = dataset.dataset  # unwrap a dataset wrapper
    ann_file = dataset.get('ann_file')
    if not ann_file:
        raise ValueError('the config\'s test_dataloader.dataset has no '
                         '`ann_file`; pass --test-csv')
    root = dataset.get('data_root') or ''
    return osp.abspath(ann_file if osp.isabs(ann_file) else osp.join(
        root, ann_file))


def read_prediction(path: str, threshold=None, size=None) -> np.ndarray:
    """A saved ``(H, W)`` mask or probability map as a 0/1 uint8 mask.

    ``.npy``: bool / integer masks (non-zero = building) or float
    probabilities in [0, 1] (``> threshold``, default 0.5); ``.png``: a
    0/255 (or 0/1) mask, or with ``threshold`` a uint8 probability map.
    ``(1, H, W)`` / ``(H, W, 1)`` are squeezed.

    Args:
        path (str): The file.
        threshold (float, optional): See above. Defaults to None.
        size (tuple[int, int], optional): ``(H, W)`` of the image; the
            prediction must have it. Defaults to None (not checked).

    Raises:
        InputError: the file cannot be read, is not one ``(H, W)`` map,
            holds NaN / probabilities outside [0, 1], or has another size.
    """
    if path.endswith('.npy'):
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise InputError(path=path, reason='not a .npy array',
                             value=str(err).splitlines()[0][:60],
                             expected='an (H, W) mask or probability map '
                             '(np.save)') from err
        if data.dtype.kind not in 'biuf':
            raise InputError(path=path, reason='unsupported dtype',
                             value=str(data.dtype),
                             expected='bool, integer or float')
    else:
        data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if data is None:
            raise InputError(path=path, reason='cannot be read as an image',
                             expected='a 0/255 mask PNG or an (H, W) .npy')
    shape = data.shape
    data = np.squeeze(data)
    if data.ndim != 2:
        raise InputError(path=path, reason='not one (H, W) map',
                         value=shape, expected='(H, W) (one building '
                         'channel: save probs[class_index])')
    if size is not None and data.shape != tuple(size):
        raise InputError(path=path, reason='size differs from the image',
                         value=data.shape,
                         expected=f'(H, W) = {tuple(size)}')
    if data.dtype.kind == 'f':
        finite = np.isfinite(data)
        if not finite.all():
            raise InputError(path=path, reason=f'{int((~finite).sum())} '
                             'non-finite values (NaN/inf)', expected=''
                             'finite probabilities in [0, 1]')
        if data.min() < 0 or data.max() > 1:
            raise InputError(path=path, reason='probabilities outside [0, 1]',
                             value=(float(data.min()), float(data.max())),
                             expected='probabilities in [0, 1] (apply the '
                             'sigmoid to logits first)')
        return (data > (0.5 if threshold is None else threshold)).astype(
            np.uint8)
    if threshold is not None and not path.endswith('.npy'):
        # a uint8 probability map
        return (data.astype(np.float32) / 255 > threshold).astype(np.uint8)
    return (data != 0).astype(np.uint8)


def _image_size(path: str):
    """``(H, W)`` of an image from its header (None if unreadable)."""
    try:
        from PIL import Image
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except (OSError, ValueError):
        return None


def submission_from_dir(pred_dir: str, test_csv: str, out: str,
                        threshold=None, min_area=None) -> dict:
    """Write the submission from ``{pred_dir}/{img_id}.png|.npy`` masks."""
    from mmseg_ext.models.segmentors.multilabel_encoder_decoder import \
        remove_small_components
    if not osp.isdir(pred_dir):
        cls = NotADirectoryError if osp.exists(pred_dir) else \
            FileNotFoundError
        raise cls(errno.ENOENT, '--pred-dir should be a folder of '
                  '{img_id}.png/.npy masks', pred_dir)
    rows, _ = read_rle_csv(test_csv, rle_column=None, rle_required=False)
    if rows and not any(
            osp.isfile(osp.join(pred_dir, row['img_id'] + ext))
            for row in rows for ext in ('.png', '.npy')):
        raise InputError(
            path=pred_dir, reason=f'none of the {len(rows)} test images of '
            f'{test_csv} has a mask here', value=rows[0]['img_id'],
            expected='{img_id}.png or {img_id}.npy per test row')
    out_rows, missing = [], []
    for row in rows:
        path = None
        for ext in ('.png', '.npy'):
            candidate = osp.join(pred_dir, row['img_id'] + ext)
            if osp.isfile(candidate):
                path = candidate
                break
        if path is None:
            missing.append(row['img_id'])
            out_rows.append((row['img_id'], ''))
            continue
        img_path = row.get('img_path')
        size = _image_size(img_path) if img_path and osp.isfile(img_path) \
            else None
        mask = read_prediction(path, threshold, size)
        if min_area:
            mask = remove_small_components(mask, min_area)
        out_rows.append((row['img_id'], rle_encode(mask)))
    if missing:
        print_log(
            f'{len(missing)} of {len(rows)} test rows have no mask in '
            f'{pred_dir} and are written as -1: {missing[:5]}',
            logger='current', level=30)
    write_submission_csv(out, out_rows)
    num_empty = sum(1 for _, r in out_rows if not r)
    print_log(f'submission written to {out}: {len(rows)} rows, {num_empty} '
              'empty (-1)', logger='current')
    return dict(num_rows=len(rows), num_empty=num_empty,
                num_missing=len(missing))


@tool_main('tools/building_submission.py')
def main(argv=None):
    args = parse_args(argv)
    out = osp.abspath(args.out)
    cfg = None
    if args.config is not None:
        cfg = load_config(args.config, args.cfg_options)
    test_csv = osp.abspath(args.test_csv) if args.test_csv else \
        test_csv_from_config(cfg)

    note_partial(f'{args.out} was not written')  # written at the end
    if args.pred_dir is not None:
        submission_from_dir(args.pred_dir, test_csv, out, args.threshold,
                            args.min_area)
        return

    from mmengine.runner import Runner
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    test_cfg = cfg.model.get('test_cfg') or dict()
    if args.threshold is not None:
        test_cfg['threshold'] = args.threshold
    if args.min_area is not None:
        test_cfg['min_area'] = args.min_area
    cfg.model.test_cfg = test_cfg
    if args.test_csv:
        dataset = cfg.test_dataloader.dataset
        dataset.data_root = osp.dirname(test_csv)
        dataset.ann_file = osp.basename(test_csv)
    cfg.test_evaluator = dict(
        type='BuildingSubmissionMetric', ann_file=test_csv, out_file=out)
    # No visualisation of test images, no training-only hooks.
    if 'visualization' in cfg.get('default_hooks', {}):
        cfg.default_hooks.visualization.draw = False
    drop_train_only_hooks(cfg)
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.test()
    note_partial(None)
    teardown_distributed()


if __name__ == '__main__':
    main()
