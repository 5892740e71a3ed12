# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Store BraTS tumour reports in a SQL database, list the stored runs.

``export`` reads ``OUT_DIR/reports/*.json`` (``OUT_DIR`` is the ``out_dir``
of ``BraTSMetric``) and writes the run's rows into the tables ``runs``,
``cases`` and ``regions``, replacing the rows of an earlier export of the
same run name in one transaction. ``runs`` prints the stored runs as a
Markdown table. ``--db`` takes any SQLAlchemy URL; the default is a SQLite
file, ``work_dirs/brats.sqlite``. See ``mmseg_ext/apis/brats_db.py``.

Example:
    python tools/brats_db.py export work_dirs/unet/brats_out --run unet-f0 \
        --model unet --config configs/brats/unet.py
    python tools/brats_db.py runs \
        --db postgresql+psycopg://me@localhost/clinic
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
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmseg_ext.apis.brats_db import (DEFAULT_DB_URL, export_reports,
                                     list_runs, load_report_dir,
                                     markdown_table, safe_url)
from mmseg_ext.datasets.brats.labels import LABEL_SCHEMES
from mmseg_ext.engine.tool_cli import add_debug_arg, tool_main
from mmseg_ext.evaluation.brats_metrics import CONVENTIONS

RUN_COLUMNS = ('name', 'model', 'config', 'checkpoint', 'label_scheme',
               'convention', 'created_at', 'num_cases', 'wt_dice', 'tc_dice',
               'et_dice')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    exp = sub.add_parser('export', help='store the reports of one run')
    exp.add_argument(
        'out_dir', help="BraTSMetric's out_dir (holds reports/*.json)")
    exp.add_argument('--run', required=True,
                     help='run name (a re-export replaces its rows)')
    exp.add_argument('--model', help='model name, stored with the run')
    exp.add_argument('--config', help='config file, stored with the run')
    exp.add_argument('--checkpoint', help='checkpoint, stored with the run')
    exp.add_argument('--label-scheme', choices=sorted(LABEL_SCHEMES),
                     help='label scheme of the run')
    exp.add_argument('--convention', choices=sorted(CONVENTIONS),
                     help='empty-case convention of the metrics')
    runs = sub.add_parser('runs', help='list the stored runs (Markdown)')
    for p in (exp, runs):
        p.add_argument(
            '--db', default=DEFAULT_DB_URL,
            help=f'SQLAlchemy URL (default: {DEFAULT_DB_URL})')
        add_debug_arg(p)
    args = parser.parse_args(argv)
    if args.command == 'export' and not args.run.strip():
        parser.error('--run should be a non-empty name')
    return args


@tool_main('tools/brats_db.py')
def main(argv=None):
    args = parse_args(argv)
    if args.command == 'runs':
        rows = list_runs(args.db)
        if not rows:
            print(f'no runs in {safe_url(args.db)}')
            return
        print(markdown_table(rows, RUN_COLUMNS))
        return
    reports = load_report_dir(args.out_dir)
    run = dict(name=args.run, model=args.model, config=args.config,
               checkpoint=args.checkpoint, label_scheme=args.label_scheme,
               convention=args.convention)
    # One transaction: on an error nothing of this export is stored.
    summary = export_reports(args.db, run, reports)
    print(f'{"replaced" if summary["replaced"] else "stored"} run '
          f'{args.run!r}: {summary["cases"]} cases, {summary["regions"]} '
          f'region rows in {safe_url(args.db)}')


if __name__ == '__main__':
    main()
