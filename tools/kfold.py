# Copyright (c) mmseg_ext contributors. All rights reserved.
"""K-fold cross-validation of a config: fold configs, training, OOF scores.

Steps (see :mod:`mmseg_ext.apis.kfold`):

1. always (unless ``--collect``): write
   ``{work_root}/{name}/fold{k}/config.py`` for ``k < K`` with the fold set
   on the train/val/test datasets (``HandBoneDataset``,
   ``BuildingRLEDataset``) and the validation metric's ``per_class_json``
   in the fold's work dir;
2. ``--train``: train the folds in turn, each ``tools/train.py`` in its own
   process (``--resume`` skips finished folds and resumes a started one);
   then step 3;
3. ``--collect`` (or after ``--train``): read the out-of-fold per-class
   JSONs, write ``oof_scores.csv``/``.json``/``.png`` and ``members.txt``
   and print the ``tools/ensemble.py`` command for the fold models.

Examples:
    python tools/kfold.py \\
        configs/segformer/segformer_mit-b0_1xb8-20k_handbone-512x512.py \\
        --num-folds 5 --train \\
        --cfg-options train_dataloader.dataset.data_root=data/hand_bone \\
        val_dataloader.dataset.data_root=data/hand_bone
    python tools/kfold.py CONFIG --num-folds 5 --train --resume
    python tools/kfold.py CONFIG --num-folds 5 --collect --checkpoint last
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

from mmengine.config import DictAction

from mmseg_ext.apis.kfold import (collect_kfold, train_folds,
                                  write_kfold_configs)
from mmseg_ext.engine.tool_cli import (ToolError, add_debug_arg,
                                       load_config, note_partial, tool_main)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='K-fold cross-validation: fold configs, training, '
        'out-of-fold scores and the ensemble members')
    parser.add_argument('config', help='config file')
    parser.add_argument('--num-folds', type=int, required=True,
                        help='K (the dataset must have >= K folds)')
    parser.add_argument('--work-root', default='work_dirs/kfold',
                        help='fold dirs go to WORK_ROOT/{config name}')
    parser.add_argument('--name', help='instead of the config name')
    parser.add_argument('--train', action='store_true',
                        help='train every fold (one process each), collect')
    parser.add_argument('--resume', action='store_true',
                        help='with --train: skip finished folds')
    parser.add_argument('--collect', action='store_true',
                        help='only collect the trained folds')
    parser.add_argument('--checkpoint', choices=('best', 'last'),
                        default='best', help='checkpoint of members.txt')
    parser.add_argument('--metric', choices=('dice', 'iou'), default='dice',
                        help='score shown in the heatmap')
    parser.add_argument('--train-args', nargs=argparse.REMAINDER, default=[],
                        help='(last) extra arguments for tools/train.py')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of CONFIG before the folds are set')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.num_folds < 2:
        parser.error(f'--num-folds should be >= 2, but got {args.num_folds}')
    if args.resume and not args.train:
        parser.error('--resume needs --train')
    if args.collect and args.train:
        parser.error('--train already collects; give one of them')
    return args


@tool_main('tools/kfold.py')
def main(argv=None):
    args = parse_args(argv)
    name = args.name or osp.splitext(osp.basename(args.config))[0]
    out_dir = osp.join(args.work_root, name)
    if not args.collect:
        load_config(args.config)  # a bad path: one line naming it
        paths = write_kfold_configs(args.config, args.num_folds, out_dir,
                                    args.cfg_options)
        print(f'wrote {len(paths)} fold configs under {out_dir}')
        if not args.train:
            print(f'train them with: python tools/kfold.py {args.config} '
                  f'--num-folds {args.num_folds} --train')
            return
        note_partial(f'the finished folds in {out_dir} are complete; rerun '
                     'with --train --resume to train the rest')
        try:
            train_folds(out_dir, resume=args.resume,
                        train_args=args.train_args,
                        folds=range(args.num_folds))
        except RuntimeError as err:  # a fold's tools/train.py failed
            raise ToolError(str(err)) from err
    note_partial(None)
    result = collect_kfold(out_dir, metric=args.metric,
                           checkpoint=args.checkpoint,
                           folds=range(args.num_folds))
    scores = result['scores']
    print(f"out-of-fold mDice {scores['mDice']}, mIoU {scores['mIoU']} "
          f"(folds {scores['folds']})")
    print(f'wrote {out_dir}/oof_scores.csv, oof_scores.json, '
          'oof_scores.png, members.txt')
    if result['members']:
        print('ensemble the fold models with:')
        print(result['command'])
    else:
        print('no fold has a checkpoint yet: members.txt is empty')


if __name__ == '__main__':
    main()
