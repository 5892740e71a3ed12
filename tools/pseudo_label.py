# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Turn confident ensemble predictions on unlabelled images into a dataset.

Reads the saved uint8 probabilities of one or more ensemble members
(``--prob-dirs``, ``{image_stem}.npy`` each, from ``tools/ensemble.py
--save-probs``), merges them by a soft vote, and keeps a class-pixel as
positive where ``p >= --pos``, negative where ``p <= --neg``, unsure
otherwise. An image with more than ``--max-unsure`` unsure pixels is
skipped (logged, listed in OUT_DIR/manifest.json).

hand_bone: OUT_DIR is a dataset root in the competition layout
(train/DCM links, train/packed_labels, splits/all.txt and
splits/fold{k}_train.txt), read by HandBoneDataset(data_root=OUT_DIR,
split='all'); a pixel unsure for any class is ignored for every class.

building: OUT_DIR/train.csv (img_id,img_path,mask_rle) and
OUT_DIR/train_img/ links, read by BuildingRLEDataset(data_root=OUT_DIR,
ann_file='train.csv', split='all'); unsure pixels count as background.

Multi-process: ``bash tools/dist_pseudo_label.sh N [args]`` (or torchrun
with ``--launcher pytorch``) shards the images; rank 0 writes the one CSV /
split list and manifest.

See mmseg_ext/apis/pseudo_label.py for the details.

Examples:
    python tools/pseudo_label.py --task hand_bone \\
        --prob-dirs work_dirs/ens/probs/0_a work_dirs/ens/probs/1_b \\
        --images-dir data/hand_bone/test/DCM --out-dir data/hand_bone_pseudo \\
        --pos 0.9 --neg 0.1 --max-unsure 0.05
    python tools/pseudo_label.py --task building --prob-dirs probs/0_a \\
        --images-dir data/building/test.csv --out-dir data/building_pseudo \\
        --max-unsure 0.02
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401  (registers modules, applies compat)
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    # Run from a checkout without `pip install -e .`.
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmseg_ext.apis.ensemble import load_weights
from mmseg_ext.apis.pseudo_label import make_pseudo_labels
from mmseg_ext.engine.launch import (add_launcher_args,
                                     start_tool_distributed,
                                     teardown_distributed)
from mmseg_ext.engine.tool_cli import (add_debug_arg, check_unit_interval,
                                       note_partial, tool_main)
from mmseg_ext.tasks import task_names
from mmseg_ext.utils.dist import is_main_process


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[2:]))
    parser.add_argument(
        '--task',
        choices=task_names(),
        required=True,
        help='the task adapter (mmseg_ext/tasks) that writes the dataset')
    parser.add_argument(
        '--prob-dirs',
        nargs='+',
        required=True,
        metavar='DIR',
        help='folders of {image_stem}.npy uint8 (C, H, W) probabilities, '
        'one per ensemble member')
    parser.add_argument(
        '--images-dir',
        required=True,
        help='the unlabelled images: hand_bone: a folder of ID*/*.png (e.g. '
        'data/hand_bone/test/DCM); building: a CSV with img_id,img_path '
        '(e.g. data/building/test.csv) or a folder of images')
    parser.add_argument(
        '--out-dir',
        required=True,
        help='the new dataset root (new, empty, or an earlier output)')
    parser.add_argument(
        '--pos',
        type=float,
        default=0.9,
        help='positive where p >= POS (default 0.9)')
    parser.add_argument(
        '--neg',
        type=float,
        default=0.1,
        help='negative where p <= NEG (default 0.1)')
    parser.add_argument(
        '--max-unsure',
        type=float,
        default=1.0,
        help='skip an image whose unsure pixel fraction exceeds this '
        '(default 1.0: keep every image)')
    parser.add_argument(
        '--weights',
        nargs='+',
        help='soft-vote weights: E numbers or a JSON/CSV [E, C] table')
    parser.add_argument(
        '--class-index',
        type=int,
        help='building: the building channel (default 0; 1 for 2-class '
        'softmax members)')
    parser.add_argument(
        '--copy',
        action='store_true',
        help='copy the images instead of symlinking them')
    parser.add_argument(
        '--num-folds',
        type=int,
        default=5,
        help='hand_bone: write splits/fold{k}_train.txt for k < N '
        '(default 5), each listing every kept image')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    add_launcher_args(parser)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    for option in ('pos', 'neg', 'max_unsure'):
        msg = check_unit_interval(
            getattr(args, option), '--' + option.replace('_', '-'))
        if msg:
            parser.error(msg)
    return args


@tool_main('tools/pseudo_label.py')
def main(argv=None):
    args = parse_args(argv)
    start_tool_distributed(args, 'tools/pseudo_label.py')
    # Labels are written atomically image by image; the index (train.csv or
    # the split lists) and manifest.json at the end, by rank 0.
    note_partial(f'any label files written in {args.out_dir} are '
                 'complete; its index and manifest.json were not updated')
    weights = None if args.weights is None else load_weights(
        args.weights, len(args.prob_dirs))
    manifest = make_pseudo_labels(
        args.task,
        args.prob_dirs,
        args.images_dir,
        args.out_dir,
        pos=args.pos,
        neg=args.neg,
        max_unsure=args.max_unsure,
        weights=weights,
        class_index=args.class_index,
        copy_images=args.copy,
        num_folds=args.num_folds,
        show_progress=not args.no_progress)
    note_partial(None)
    main_process = is_main_process()
    teardown_distributed()
    if main_process:
        print(f'kept {manifest["num_kept"]} of {manifest["num_images"]} '
              f'images ({manifest["num_skipped"]} skipped, mean unsure '
              'fraction '
              f'{manifest["mean_unsure_fraction"]:.4f}); wrote '
              f'{args.out_dir}')
    return manifest


if __name__ == '__main__':
    main()
