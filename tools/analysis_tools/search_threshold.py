# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Search the threshold and min-area that maximise the competition Dice.

Runs the model once over the config's validation set (single process),
caches each image's building probabilities as uint8 with its ground truth
(:class:`mmseg_ext.utils.threshold_search.ProbabilityCache`), then
grid-searches ``threshold x min_area`` with the competition rule (per-image
Dice, empty/empty skipped, a false positive on an empty tile scores 0).
Writes ``threshold_search.json`` and a heatmap ``threshold_search.png``.

Examples::

    # run the model once (cached), then search
    python tools/analysis_tools/search_threshold.py CONFIG CHECKPOINT \\
        --cache-dir work_dirs/x/val_probs --out-dir work_dirs/x

    # search again on the cache only (other grid)
    python tools/analysis_tools/search_threshold.py \\
        --cache-dir work_dirs/x/val_probs --thresholds 0.3:0.6:0.02 \\
        --min-areas 0,10,20,40,80

    # saved probabilities {img_id}.png (uint8 0-255) or .npy (float),
    # ground truth from the config's validation set (resized, nearest, to
    # the probabilities' size when they were saved at another scale)
    python tools/analysis_tools/search_threshold.py CONFIG \\
        --prob-dir preds/ --cache-dir work_dirs/x/val_probs
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import mmseg_ext  # noqa: F401

import numpy as np
from mmengine.config import Config, DictAction

from mmseg_ext.engine.tool_cli import add_debug_arg, load_config, tool_main
from mmseg_ext.utils.io import dump_json_atomic
from mmseg_ext.utils.threshold_search import (ProbabilityCache, parse_range,
                                              plot_search, search_threshold)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Grid-search threshold x min_area on validation '
        'probabilities for the building competition Dice')
    parser.add_argument('config', nargs='?', help='model config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file')
    parser.add_argument(
        '--cache-dir', required=True,
        help='probability cache (read if it exists, else written)')
    parser.add_argument(
        '--prob-dir',
        help='saved probabilities {img_id}.png/.npy instead of running '
        'the model (needs CONFIG for the ground truth)')
    parser.add_argument(
        '--thresholds', default='0.2:0.8:0.05',
        help='start:stop:step or a comma list (default 0.2:0.8:0.05)')
    parser.add_argument(
        '--min-areas', default='0,5,10,20,50,100,200',
        help='comma list or start:stop:step of minimum component areas '
        '(pixels at the original size)')
    parser.add_argument(
        '--out-dir', help='where to write the JSON and PNG (default: '
        'the cache folder)')
    parser.add_argument(
        '--refresh', action='store_true',
        help='recompute the cache even if it exists')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    return args


def _gt_and_probs(sample, class_index: int = 0):
    """``(probs (H, W) float, gt (H, W) uint8)`` of one output sample."""
    import torch

    from mmseg_ext.utils.multilabel import (num_packed_channels,
                                            unpack_multilabel_torch)
    probs = sample.seg_logits.data
    gt = sample.gt_sem_seg.data
    if gt.dtype == torch.int16:
        num_classes = probs.shape[0]
        gt = unpack_multilabel_torch(gt[:num_packed_channels(num_classes)],
                                     num_classes)
    gt = gt[class_index] if gt.dim() == 3 and gt.shape[0] > 1 else \
        gt.reshape(gt.shape[-2:])
    return (probs[class_index].float().cpu().numpy(),
            gt.cpu().numpy().astype(np.uint8))


def cache_from_model(cfg: Config, checkpoint: str, cache: ProbabilityCache,
                     class_index: int = 0) -> None:
    """One pass over the validation set; fills ``cache``."""
    import torch
    from mmengine.runner import Runner
    from mmengine.utils import ProgressBar

    cfg.load_from = checkpoint
    if cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join(cache.folder, 'work_dir')
    # Probabilities only: thresholding happens in the search.
    cfg.model.setdefault('test_cfg', dict())
    cfg.model.test_cfg['min_area'] = 0
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    model = runner.model
    model.eval()
    loader = runner.val_dataloader
    bar = ProgressBar(len(loader.dataset))
    with torch.no_grad():
        for data in loader:
            for sample in model.val_step(data):
                probs, gt = _gt_and_probs(sample, class_index)
                key = sample.metainfo.get('img_id') or osp.basename(
                    sample.metainfo['img_path'])
                cache.add(key, probs, gt)
                bar.update()
    print()
    cache.save_index(
        dict(source='model', config=cfg.filename, checkpoint=checkpoint))


def cache_from_dir(cfg: Config, prob_dir: str,
                   cache: ProbabilityCache) -> None:
    """Fill ``cache`` from ``{prob_dir}/{img_id}.png|.npy`` and the config's
    validation set (RLE ground truth)."""
    import cv2
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from mmseg_ext.datasets.pixel_counters import read_image_size
    from mmseg_ext.utils.rle import rle_decode
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    ds_cfg = cfg.val_dataloader.dataset.copy()
    ds_cfg.pipeline = []
    dataset = DATASETS.build(ds_cfg)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        img_id = info['img_id']
        path = next((osp.join(prob_dir, img_id + ext)
                     for ext in ('.png', '.npy')
                     if osp.isfile(osp.join(prob_dir, img_id + ext))), None)
        if path is None:
            raise FileNotFoundError(
                f'no probabilities {img_id}.png/.npy in {prob_dir} for row '
                f'{info["csv_line"]} of {info["csv_path"]}')
        if path.endswith('.npy'):
            probs = np.load(path)
        else:
            probs = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        probs = np.squeeze(probs)
        if 'height' in info and 'width' in info:
            size = (info['height'], info['width'])
        else:
            size = read_image_size(info['img_path'])
        gt = rle_decode(info['mask_rle'], size)
        if gt.shape != probs.shape:
            # Probabilities saved at another scale (e.g. the test scale):
            # the ground truth follows them (nearest).
            gt = cv2.resize(gt, probs.shape[::-1],
                            interpolation=cv2.INTER_NEAREST)
        cache.add(img_id, probs, gt)
    cache.save_index(dict(source=prob_dir, config=cfg.filename))


@tool_main('tools/analysis_tools/search_threshold.py')
def main(argv=None):
    args = parse_args(argv)
    thresholds = parse_range(args.thresholds, float)
    min_areas = parse_range(args.min_areas, int)
    out_dir = args.out_dir or args.cache_dir

    if ProbabilityCache(args.cache_dir).exists() and not args.refresh:
        cache = ProbabilityCache.load(args.cache_dir)
        print(f'using the cached probabilities of {len(cache)} images in '
              f'{args.cache_dir}')
    else:
        if args.config is None:
            raise ValueError(f'no cache in {args.cache_dir}: give CONFIG '
                             'and CHECKPOINT (or --prob-dir)')
        cfg = load_config(args.config, args.cfg_options)
        cache = ProbabilityCache(args.cache_dir)
        if args.prob_dir is not None:
            cache_from_dir(cfg, args.prob_dir, cache)
        elif args.checkpoint is not None:
            cache_from_model(cfg, args.checkpoint, cache)
        else:
            raise ValueError('give CHECKPOINT or --prob-dir')

    result = search_threshold(((p, g) for _, p, g in cache), thresholds,
                              min_areas)
    result['cache'] = osp.abspath(args.cache_dir)
    result['cache_meta'] = cache.meta
    json_path = osp.join(out_dir, 'threshold_search.json')
    png_path = osp.join(out_dir, 'threshold_search.png')
    dump_json_atomic(result, json_path)
    plot_search(result, png_path)
    best = result['best']
    print(f'best competition Dice {best["score"]:.4f} (plain mean '
          f'{best["mean_dice"]:.4f}, {best["num_scored"]}/'
          f'{result["num_images"]} images scored) at threshold '
          f'{best["threshold"]:.3f}, min_area {best["min_area"]}')
    print(f'use: --cfg-options model.test_cfg.threshold={best["threshold"]} '
          f'model.test_cfg.min_area={best["min_area"]}')
    print(f'wrote {json_path} and {png_path}')


if __name__ == '__main__':
    main()
