# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Compute class weights of a config's training set, as ClassWeightHook does.

Builds ``train_dataloader.dataset`` of the config, counts the labelled pixels
per class over its label files with the same code as
:class:`mmseg_ext.engine.hooks.ClassWeightHook` (parallel, cached in the
output folder), prints the table and writes ``class_weights.json`` and
``class_weights.png``. Paste the weights into a loss's ``class_weight``, or
add the hook to the config to do it at train time.

Example::

    python tools/analysis_tools/class_weights.py \\
        configs/segformer/segformer_mit-b0_1xb8-1k_synthimb-128x128.py \\
        --method median_freq --max-ratio 50
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401  (registers modules)
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    # Run from a checkout without `pip install -e .`.
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import mmseg_ext  # noqa: F401

from mmengine.config import DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from mmseg_ext.datasets.pixel_counters import (count_dataset_pixels,
                                               unwrap_dataset)
from mmseg_ext.engine.tool_cli import add_debug_arg, load_config, tool_main
from mmseg_ext.utils.class_weights import (CLASS_WEIGHT_METHODS,
                                           class_weight_table,
                                           compute_class_weights,
                                           save_class_weight_report)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Compute class weights from the training labels of a '
        'config (pixel counts per class)')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--method',
        default='inverse_freq',
        choices=CLASS_WEIGHT_METHODS,
        help='weighting formula (default: inverse_freq)')
    parser.add_argument(
        '--beta',
        type=float,
        default=0.9999,
        help='beta of effective_num (default: 0.9999)')
    parser.add_argument(
        '--max-ratio',
        type=float,
        default=None,
        help='clip so that max(w) / min(w) <= this (default: no clipping)')
    parser.add_argument(
        '--normalize',
        default='mean',
        choices=['mean', 'sum', 'none'],
        help='mean: present classes average 1; sum: all weights sum to C; '
        'none: raw (default: mean)')
    parser.add_argument(
        '--num-workers',
        type=int,
        default=2,
        help='counting processes (default: 2)')
    parser.add_argument(
        '--counter',
        default=None,
        help='TASK_UTILS type of a PixelCounter to use for every dataset '
        "(default: the dataset's own, else LabelMapPixelCounter)")
    parser.add_argument(
        '--no-cache',
        action='store_true',
        help='recount even if the cache in --out-dir matches')
    parser.add_argument(
        '--out-dir',
        default=None,
        help='output folder (default: work_dirs/class_weights/<config name>)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'train_dataloader.dataset.data_root=data/x')
    add_debug_arg(parser)
    return parser.parse_args(argv)


@tool_main('tools/analysis_tools/class_weights.py')
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if cfg.get('custom_imports', None):
        import_modules_from_strings(**cfg['custom_imports'])
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    if 'train_dataloader' not in cfg:
        raise ValueError(f'config {args.config!r} should have a '
                         '`train_dataloader`, but it has none')

    from mmseg.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'class_weights',
        osp.splitext(osp.basename(args.config))[0])
    counter = None if args.counter is None else dict(type=args.counter)

    counts, info = count_dataset_pixels(
        dataset,
        counter=counter,
        num_workers=args.num_workers,
        cache_dir=None if args.no_cache else out_dir,
        logger='current')
    classes = unwrap_dataset(dataset)[0].metainfo.get('classes') or [
        str(i) for i in range(len(counts))
    ]
    normalize = None if args.normalize == 'none' else args.normalize
    weights = compute_class_weights(
        counts,
        method=args.method,
        beta=args.beta,
        normalize=normalize,
        max_ratio=args.max_ratio,
        class_names=classes)
    params = dict(
        method=args.method,
        beta=args.beta,
        normalize=normalize,
        max_ratio=args.max_ratio)
    print(f'\n{args.method} class weights of {info["num_items"]} label '
          f'files{" (cached counts)" if info["cache_hit"] else ""}:')
    print(class_weight_table(classes, counts, weights))
    print('class_weight=[' + ', '.join(f'{w:.4f}' for w in weights) + ']')
    paths = save_class_weight_report(
        out_dir,
        classes,
        counts,
        weights,
        params,
        extra=dict(
            config=args.config,
            fingerprint=info['fingerprint'],
            num_items=info['num_items'],
            counters=info['counters']))
    print('written: ' + ', '.join(paths.values()))
    return weights


if __name__ == '__main__':
    main()
