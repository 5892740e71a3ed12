# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Analyse several models' predictions on the same validation images.

Per-class Dice against object area (scatter + binned table), pairwise
agreement of the models (Dice between their masks, per class and overall,
matrix + heatmap), the classes where they disagree most, and the suggested
classwise ensemble members with the ``tools/ensemble.py`` command. Reads
``--save-probs`` probabilities (``{stem}.npy``) or ``--save-pred-dir`` /
ensemble masks (``{stem}.png``) one image at a time. See
``mmseg_ext/apis/analyze_predictions.py``.

Examples:
    # hand bone: probabilities of two models, packed ground truth
    python tools/analysis_tools/analyze_predictions.py \\
        work_dirs/ens/val_probs/0_a work_dirs/ens/val_probs/1_b \\
        --gt-dir data/hand_bone/train/packed_labels --task hand_bone \\
        --out work_dirs/analysis
    # plain MMSeg softmax outputs: class-index PNGs
    python tools/analysis_tools/analyze_predictions.py preds_a preds_b \\
        --gt-dir data/x/ann_dir/val --gt-format label --num-classes 4 \\
        --out work_dirs/analysis
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    # Run from a checkout without `pip install -e .`.
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import mmseg_ext  # noqa: F401

from mmseg_ext.apis.analyze_predictions import analyze_predictions
from mmseg_ext.engine.tool_cli import (add_debug_arg, check_unit_interval,
                                       note_partial, tool_main)
from mmseg_ext.tasks import task_names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('pred_dirs', nargs='+', metavar='PRED_DIR',
                        help='one folder of {stem}.npy or {stem}.png per '
                        'model')
    parser.add_argument('--gt-dir', required=True,
                        help='ground truth {stem}{gt-suffix} (recursive)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--names', nargs='+', help='model names')
    parser.add_argument('--task', choices=task_names(),
                        help='task adapter: class names, ground-truth format')
    parser.add_argument('--gt-format', choices=('packed', 'label'),
                        help="default: the task's (else packed)")
    parser.add_argument('--gt-suffix', default='.png')
    parser.add_argument('--classes', nargs='+', help='class names')
    parser.add_argument('--num-classes', type=int,
                        help='C, when every model gives masks')
    parser.add_argument(
        '--decision', choices=('argmax', 'threshold'),
        help='of probabilities (default: argmax for label ground truth)')
    parser.add_argument('--threshold', type=float, default=0.5,
                        help='threshold decision: p > threshold')
    parser.add_argument('--top-k', type=int, default=5,
                        help='classes of most disagreement listed')
    parser.add_argument('--no-plots', action='store_true')
    parser.add_argument('--no-progress', action='store_true')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.names is not None and len(args.names) != len(args.pred_dirs):
        parser.error(f'--names should give one name per PRED_DIR '
                     f'({len(args.pred_dirs)}), but got {len(args.names)}')
    msg = check_unit_interval(args.threshold, '--threshold')
    if msg:
        parser.error(msg)
    if args.num_classes is not None and args.num_classes < 1:
        parser.error(f'--num-classes should be >= 1, but got '
                     f'{args.num_classes}')
    return args


@tool_main('tools/analysis_tools/analyze_predictions.py')
def main(argv=None):
    args = parse_args(argv)
    note_partial(f'{args.out}/per_image.csv was not written; other files '
                 'there may be from an earlier run')
    result = analyze_predictions(
        args.pred_dirs, args.gt_dir, args.out, names=args.names,
        task=args.task, gt_format=args.gt_format, gt_suffix=args.gt_suffix,
        classes=args.classes, num_classes=args.num_classes,
        decision=args.decision, threshold=args.threshold, top_k=args.top_k,
        plot=not args.no_plots, show_progress=not args.no_progress)
    note_partial(None)
    print(f'analysed {len(result["models"])} models on '
          f'{result["num_images"]} images; most disagreement: '
          f'{", ".join(result["most_disagreed"]) or "-"}; suggested '
          f'classwise members: {", ".join(result["members"])}')
    print(result['command'])
    print(f'wrote {result["files"]["analysis.md"]}')


if __name__ == '__main__':
    main()
