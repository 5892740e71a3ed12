# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Cross-check a stored BraTS run's tumour sites against a clinical table.

Reads the clinical table (``--clinical`` CSV, or ``--clinical-table``, a
table in the same database): case id, suspected hemisphere and/or
suspected atlas region. Prints per case the segmented hemisphere of the
region (WT by default), whether it agrees, the top atlas regions and
whether the suspected one is among them, and the cases missing on either
side, as a Markdown table; writes the rows to the database table
``crosscheck`` (replacing the run's earlier ones) and, with ``--out``, to a
CSV. See ``mmseg_ext/apis/brats_crosscheck.py`` for the rules.

Example:
    python tools/brats_crosscheck.py --run unet-f0 --clinical clinical.csv
    python tools/brats_crosscheck.py --db postgresql+psycopg://me@host/clinic \
        --run unet-f0 --clinical-table patients --case-column patient_case
"""
import argparse
import csv
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    # Run from a checkout without `pip install -e .`.
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmseg_ext.apis.brats_crosscheck import (CROSSCHECK_COLUMNS,
                                             DEFAULT_COLUMNS, crosscheck,
                                             read_clinical_csv,
                                             read_clinical_table,
                                             write_crosscheck)
from mmseg_ext.apis.brats_db import (DEFAULT_DB_URL, REGIONS, markdown_table,
                                     safe_url)
from mmseg_ext.engine.tool_cli import add_debug_arg, note_partial, tool_main
from mmseg_ext.utils.io import atomic_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--db', default=DEFAULT_DB_URL,
        help=f'SQLAlchemy URL of the run (default: {DEFAULT_DB_URL})')
    parser.add_argument('--run', required=True, help='the stored run name')
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--clinical', metavar='CSV', help='clinical CSV file')
    src.add_argument('--clinical-table', metavar='TABLE',
                     help='clinical table in the --db database '
                     '(schema.table for another schema)')
    for key, option in (('case_id', '--case-column'),
                        ('hemisphere', '--hemisphere-column'),
                        ('region', '--region-column')):
        parser.add_argument(
            option, help=f'column name (default: {DEFAULT_COLUMNS[key]}; '
            'a column named here must exist)')
    parser.add_argument('--region', default='WT', choices=REGIONS,
                        help='tumour region to compare (default: WT)')
    parser.add_argument('--top-k', type=int, default=3,
                        help='atlas regions listed and compared')
    parser.add_argument('--out', metavar='CSV', help='also write a CSV')
    parser.add_argument('--no-db-write', action='store_true',
                        help='do not write the crosscheck table')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f'--top-k should be >= 1, but got {args.top_k}')
    return args


def _cell(v):
    return '' if v is None else str(v)


@tool_main('tools/brats_crosscheck.py')
def main(argv=None):
    args = parse_args(argv)
    names = dict(case_column=args.case_column,
                 hemisphere_column=args.hemisphere_column,
                 region_column=args.region_column)
    if args.clinical:
        clinical = read_clinical_csv(args.clinical, **names)
    else:
        clinical = read_clinical_table(args.db, args.clinical_table, **names)
    rows = crosscheck(args.db, args.run, clinical, region=args.region,
                      top_k=args.top_k)
    if not args.no_db_write:
        # One transaction: the run's earlier rows stay on an error.
        write_crosscheck(args.db, args.run, rows)
        note_partial('the crosscheck table was updated; --out was not '
                     'written')
    if args.out:
        with atomic_path(args.out) as tmp:
            with open(tmp, 'w', newline='', encoding='utf-8') as f:
                writer = csv.writer(f)
                writer.writerow(CROSSCHECK_COLUMNS)
                for r in rows:
                    writer.writerow([_cell(r[c]) for c in CROSSCHECK_COLUMNS])
    note_partial(None)
    print(markdown_table(rows, CROSSCHECK_COLUMNS))
    counts = {}
    for key in ('agrees_hemisphere', 'agrees_region'):
        vals = [r[key] for r in rows]
        counts[key] = (vals.count(True), vals.count(False), vals.count(None))
    missing = {s: [r['case_id'] for r in rows if r['status'] == s]
               for s in ('no_segmentation', 'no_clinical')}
    print()
    for key, (yes, no, unknown) in counts.items():
        print(f'{key}: {yes} agree, {no} disagree, {unknown} unknown')
    for status, ids in missing.items():
        print(f'{status}: {len(ids)}' + (f' ({", ".join(ids)})' if ids
                                         else ''))
    where = [f'table crosscheck of {safe_url(args.db)}'] \
        if not args.no_db_write else []
    where += [args.out] if args.out else []
    if where:
        print(f'{args.region} cross-check of run {args.run!r} written to '
              f'{" and ".join(where)}')


if __name__ == '__main__':
    main()
