# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Convert hand-bone polygons to packed labels and write K-fold splits.

Rasterises every ``train/outputs_json/{ID}/{name}.json`` once into a packed
multi-label PNG ``train/packed_labels/{ID}/{name}.png`` (29 overlapping
classes in two uint16 channels) and writes patient-grouped fold files
``splits/fold{k}_{train,val}.txt`` and ``splits/all.txt``. Up-to-date labels
are skipped on a re-run. A bad file (missing or broken JSON, unknown or
repeated label, degenerate polygon, unreadable image) fails the run with a
message naming it, unless ``--skip-bad`` leaves it out; points outside the
image only warn (the part inside the image is rasterised). See
``mmseg_ext/datasets/converters/hand_bone.py``.

Example:
    python tools/dataset_converters/hand_bone.py data/hand_bone --nproc 8
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

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.engine.tool_cli import add_debug_arg, note_partial, tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'data_root', help='dataset root holding train/DCM and '
        'train/outputs_json')
    parser.add_argument(
        '--num-folds', type=int, default=5,
        help='number of patient-grouped folds')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the fold assignment')
    parser.add_argument(
        '--nproc', type=int, default=4, help='worker processes')
    parser.add_argument(
        '--skip-bad', action='store_true',
        help='log bad files and leave them out of the splits instead of '
        'failing')
    parser.add_argument(
        '--force', action='store_true',
        help='rebuild every label, also the up-to-date ones')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide the progress bar')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.num_folds < 2:
        parser.error(f'--num-folds should be >= 2, but got {args.num_folds}')
    if args.nproc < 1:
        parser.error(f'--nproc should be >= 1, but got {args.nproc}')
    return args


@tool_main('tools/dataset_converters/hand_bone.py')
def main(argv=None):
    args = parse_args(argv)
    # Labels are written atomically file by file (a rerun skips the
    # up-to-date ones); the split lists at the end.
    note_partial('the packed labels written so far under '
                 f'{args.data_root} are complete (a rerun converts only the '
                 'rest); the splits were not updated')
    summary = convert_hand_bone(
        args.data_root,
        num_folds=args.num_folds,
        seed=args.seed,
        nproc=args.nproc,
        skip_bad=args.skip_bad,
        force=args.force,
        show_progress=not args.no_progress)
    note_partial(None)
    print(f'converted {len(summary["converted"])}, up to date '
          f'{len(summary["skipped"])}, bad {len(summary["bad"])}, warnings '
          f'{len(summary["warnings"])}; splits in '
          f'{osp.dirname(summary["splits"]["all"])}')


if __name__ == '__main__':
    main()
