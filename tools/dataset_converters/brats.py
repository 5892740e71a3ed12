# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Convert BraTS NIfTI cases into an axial slice cache with K-fold splits.

Writes, per case, ``{out}/cases/{case_id}/image.npy`` (float16 ``(Z, X, Y,
C)``: the chosen modalities as channels, z-scored over the brain voxels)
and ``label.npy`` (the regions WT, TC, ET as a packed multi-label channel),
plus ``{out}/index.json`` (shape, affine, spacing, slice range of every
case) and patient-level folds ``{out}/splits/fold{k}_{train,val}.txt``,
``all.txt`` and ``test.txt`` (the unlabelled cases). ``{out}`` defaults to
``ROOT/brats_slices``. Up-to-date cases are skipped on a re-run. A bad case
(missing modality, truncated file, shapes or affines that differ, label
values the scheme lacks) fails the run naming the case and the file, unless
``--skip-bad`` leaves it out. See ``mmseg_ext/datasets/brats/convert.py``.

Example:
    python tools/dataset_converters/brats.py data/brats --nproc 8
    python tools/dataset_converters/brats.py data/brats23 \
        --modalities T1ce FLAIR --out-dir data/brats23_t1ce_flair
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

from mmseg_ext.datasets.brats.convert import BRATS_CACHE_DIR, convert_brats
from mmseg_ext.datasets.brats.labels import LABEL_SCHEMES
from mmseg_ext.datasets.brats.layout import MODALITIES, MODALITY_NAMES
from mmseg_ext.engine.tool_cli import add_debug_arg, note_partial, tool_main

MODALITY_CHOICES = MODALITIES + tuple(
    sorted({t for tags in MODALITY_NAMES.values() for t in tags}))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'root', help='BraTS root holding one folder per case '
        '(BraTS20_Training_001/, BraTS-GLI-00000-000/, ...)')
    parser.add_argument(
        '--out-dir', default=None,
        help=f'cache folder (default: ROOT/{BRATS_CACHE_DIR})')
    parser.add_argument(
        '--modalities', nargs='+', default=None, choices=MODALITY_CHOICES,
        metavar='NAME',
        help='modalities to cache, in channel order: physical names '
        f'{" ".join(MODALITIES)} or the file tags (default: all four, '
        'physical order)')
    parser.add_argument(
        '--label-scheme', default='auto',
        choices=('auto', ) + tuple(sorted(LABEL_SCHEMES)),
        help='label values of the seg files (default: from the file names)')
    parser.add_argument(
        '--num-folds', type=int, default=5,
        help='number of patient-level folds')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the fold assignment')
    parser.add_argument(
        '--nproc', type=int, default=2, help='worker processes')
    parser.add_argument(
        '--skip-bad', action='store_true',
        help='log bad cases and leave them out of the index and splits '
        'instead of failing')
    parser.add_argument(
        '--force', action='store_true',
        help='convert every case, also the up-to-date ones')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide the progress bar')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.num_folds < 2:
        parser.error(f'--num-folds should be >= 2, but got {args.num_folds}')
    if args.nproc < 1:
        parser.error(f'--nproc should be >= 1, but got {args.nproc}')
    return args


@tool_main('tools/dataset_converters/brats.py')
def main(argv=None):
    args = parse_args(argv)
    out_dir = args.out_dir or osp.join(args.root, BRATS_CACHE_DIR)
    # Cases are written atomically one by one (a rerun skips the up-to-date
    # ones); the index and the splits at the end.
    note_partial(f'the case files written so far under {out_dir} are '
                 'complete (a rerun converts only the rest); the split '
                 'files were not updated')
    summary = convert_brats(
        args.root,
        out_dir=args.out_dir,
        modalities=args.modalities,
        label_scheme=None if args.label_scheme == 'auto' else
        args.label_scheme,
        num_folds=args.num_folds,
        seed=args.seed,
        nproc=args.nproc,
        skip_bad=args.skip_bad,
        force=args.force,
        show_progress=not args.no_progress)
    note_partial(None)
    print(f'converted {len(summary["converted"])}, up to date '
          f'{len(summary["skipped"])}, bad {len(summary["bad"])}; index '
          f'{summary["index"]}, splits in '
          f'{osp.dirname(summary["splits"]["all"])}')


if __name__ == '__main__':
    main()
