# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Write synthetic BraTS cases in the real 2020 or 2023 layout.

Deterministic by seed. Read them like the real data afterwards
(``mmseg_ext.datasets.brats.find_brats_cases``).

With ``--clinical-csv`` also writes a clinical table for
``tools/brats_crosscheck.py`` (suspected hemisphere and region = the true
tumour site, every 4th case deliberately on the other side), and with
``--atlas`` the toy octant atlas (label NIfTI + ``*_names.json``) whose
region names the CSV uses.

Example:
    python tools/misc/generate_brats_data.py data/brats_synth --num-cases 8 \
        --lateral --clinical-csv data/brats_synth/clinical.csv \
        --atlas data/brats_synth/atlas.nii.gz
    python tools/misc/generate_brats_data.py data/brats21_synth --release 2021
    python tools/misc/generate_brats_data.py data/brats23_synth \
        --scheme brats2023 --size 64 64 48
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
from mmseg_ext.datasets.brats.labels import LABEL_SCHEMES
from mmseg_ext.datasets.generators.brats import (RELEASES, brats_affine,
                                                 generate_brats,
                                                 generate_brats_atlas,
                                                 generate_brats_clinical)
from mmseg_ext.engine.tool_cli import add_debug_arg, tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='folder to hold the case folders')
    parser.add_argument('--num-cases', type=int, default=4)
    parser.add_argument(
        '--scheme', default='brats2020', choices=sorted(LABEL_SCHEMES),
        help='file names and labels: brats2020 (BraTS20_Training_001, '
        'labels 1, 2, 4) or brats2023 (BraTS-GLI-00001-000, labels 1, 2, 3)')
    parser.add_argument(
        '--size', type=int, nargs=3, default=(48, 48, 32),
        metavar=('X', 'Y', 'Z'),
        help='volume size in voxels (the real data is 240 240 155)')
    parser.add_argument('--split', default='training',
                        choices=('training', 'validation'),
                        help='validation cases have no label file')
    parser.add_argument('--with-case-355', action='store_true',
                        help='brats2020: the last case is case 355 with '
                        'its label named W39_1998.09.19_Segm.nii')
    parser.add_argument(
        '--release', type=int, choices=sorted(RELEASES),
        help='name style: 2020 (BraTS20_Training_001), 2021 '
        '(BraTS2021_00000, labels as 2020) or 2023; default from --scheme')
    parser.add_argument(
        '--ext', choices=('.nii', '.nii.gz', 'mixed'),
        help='file extension; mixed: odd cases .nii, even .nii.gz '
        '(default: mixed for release 2020, .nii.gz otherwise)')
    parser.add_argument(
        '--lateral', action='store_true',
        help='tumours off the midline, one hemisphere each (for the '
        'cross-check demo)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--clinical-csv', metavar='PATH',
        help='also write a clinical CSV (case_id, suspected_hemisphere, '
        'suspected_region, symptom) for the cross-check demo')
    parser.add_argument(
        '--atlas', metavar='PATH',
        help='also write the toy atlas (.nii.gz) and PATH stem + '
        '_names.json')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.num_cases < 0:
        parser.error(f'--num-cases should be >= 0, but got {args.num_cases}')
    if min(args.size) < 8:
        parser.error(f'--size should be >= 8 each, but got {args.size}')
    if args.with_case_355 and (args.scheme != 'brats2020'
                               or args.split != 'training'
                               or args.release not in (None, 2020)):
        parser.error('--with-case-355 needs --scheme brats2020 and '
                     '--split training (release 2020)')
    if args.release is not None and RELEASES[args.release] != args.scheme:
        parser.error(f'--release {args.release} needs --scheme '
                     f'{RELEASES[args.release]}')
    if args.clinical_csv and args.split != 'training':
        parser.error('--clinical-csv needs --split training (labelled '
                     'cases)')
    if args.atlas and not (args.atlas.endswith('.nii')
                           or args.atlas.endswith('.nii.gz')):
        parser.error(f'--atlas should end with .nii or .nii.gz, but got '
                     f'{args.atlas!r}')
    return args


@tool_main('tools/misc/generate_brats_data.py')
def main(argv=None):
    args = parse_args(argv)
    cases = generate_brats(args.root, args.num_cases, tuple(args.size),
                           args.scheme, args.seed, args.split,
                           ext=args.ext, with_case_355=args.with_case_355,
                           release=args.release, lateral=args.lateral)
    print(f'wrote {len(cases)} {args.scheme} {args.split} cases of '
          f'{"x".join(map(str, args.size))} to {args.root}')
    if args.atlas:
        out = generate_brats_atlas(args.atlas, tuple(args.size),
                                   brats_affine(args.size))
        print(f'wrote the atlas {out["atlas"]} and its names '
              f'{out["names_path"]}')
    if args.clinical_csv:
        rows = generate_brats_clinical(cases, args.clinical_csv)
        print(f'wrote {len(rows)} clinical rows ('
              f'{sum(r["disagrees"] for r in rows)} deliberately on the '
              f'wrong side) to {args.clinical_csv}')


if __name__ == '__main__':
    main()
