# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Ensemble segmentors: soft/hard/classwise vote, thresholds, masks, CSV.

Members, in this order (``--weights`` and ``--scores`` follow it):

- ``--member CONFIG CHECKPOINT`` (repeatable): a segmentor run on its own
  config's dataset (``val_dataloader`` for ``--split val``,
  ``test_dataloader`` for ``--split test``); the member datasets must list
  the same images in the same order (checked). ``--save-probs DIR`` keeps
  each model member's probabilities as ``DIR/{i}_{config}/{stem}.npy`` for
  later ``--prob-dirs`` runs.
- ``--prob-dirs DIR ...``: saved probabilities, one ``{image_stem}.npy``
  uint8 ``(C, H, W)`` array (``round(255 p)``, ``quantize_probs``) per
  image.

Strategies: ``soft`` (weighted mean of probabilities, ``--weights`` E
numbers or an ``[E, C]`` JSON/CSV table), ``hard`` (``k``-of-``E`` vote of
members binarised at ``--member-threshold``; ``--k``), ``classwise`` (per
class the member with the best ``--scores``: the per-class JSONs of
``MultiLabelDiceMetric`` / ``PerClassIoUMetric``, one per member).

``--split val`` searches per-class thresholds (mean per-image Dice, eps
1e-4; for ``hard`` the per-class ``k``) and, with ``--postprocess``, the
post-processing plan (nnU-Net rule) and, with ``--crf``, the classes that
keep the dense CRF (optional ``pip install pydensecrf2``; the grey image of
each sample, ``--img-dir`` for ``--prob-dirs`` members), writing
``OUT_DIR/thresholds.json`` and ``OUT_DIR/thresholds.png``. Softmax members
(argmax decision) get ``OUT_DIR/val_scores.json`` instead.

``--split test`` applies ``--thresholds`` (a number or thresholds.json with
its plan and CRF classes; ``--no-postprocess``, ``--no-crf`` skip them) and
writes ``OUT_DIR/{stem}.png`` (packed multi-label PNG; 0/255
PNG for one class; class-index PNG for softmax members) and/or the
submission CSV of the task (``--submission hand_bone|building --out FILE``,
or ``--out FILE`` alone: the task of ``--task`` or of the first member
config's dataset).

The task (class names, ground-truth format, submission layout) comes from
the first ``--member`` config's dataset, or ``--task NAME`` (any registered
task adapter, see mmseg_ext/tasks).

One image at a time (peak memory does not grow with the number of images).
Multi-process: ``bash tools/dist_ensemble.sh GPUS [ensemble.py args]`` (or
``torchrun ... tools/ensemble.py ... --launcher pytorch``) shards the images
over the processes (one GPU each; gloo on CPU without CUDA); masks and
``--save-probs`` files are written by every process, the thresholds JSON and
the ONE submission CSV by rank 0 (rows are gathered, not concatenated from
per-rank files).

Examples:
    # validation: thresholds of a soft ensemble of two models, saving probs
    python tools/ensemble.py --member cfg_a.py a.pth --member cfg_b.py b.pth \\
        --split val --out-dir work_dirs/ens --postprocess \\
        --save-probs work_dirs/ens/val_probs
    # the same from saved probabilities (fast), weighted
    python tools/ensemble.py --prob-dirs work_dirs/ens/val_probs/0_cfg_a \\
        work_dirs/ens/val_probs/1_cfg_b --weights 0.6 0.4 --split val \\
        --gt-dir data/x/ann_dir/val --out-dir work_dirs/ens_w
    # validation on 4 GPUs (4 CPU processes without CUDA)
    bash tools/dist_ensemble.sh 4 --member cfg_a.py a.pth \\
        --member cfg_b.py b.pth --split val --out-dir work_dirs/ens
    # validation with the dense CRF (kept per class where it helps)
    python tools/ensemble.py --prob-dirs work_dirs/ens/val_probs/0_cfg_a \
        --split val --gt-dir data/x/ann_dir/val --img-dir data/x/img_dir/val \
        --out-dir work_dirs/ens_crf --postprocess --crf
    # test: masks and the hand-bone submission
    python tools/ensemble.py --member cfg_a.py a.pth --member cfg_b.py b.pth \\
        --split test --thresholds work_dirs/ens/thresholds.json \\
        --out-dir work_dirs/ens/test_masks --submission hand_bone \\
        --out submission.csv
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

from mmseg_ext.apis.ensemble import (DECISIONS, Ensemble, ModelMember,
                                     ProbDirMember, ensemble_test,
                                     ensemble_val, load_scores, load_weights)
from mmseg_ext.apis.ensemble.crf import require_crf
from mmseg_ext.engine.launch import (add_launcher_args,
                                     start_tool_distributed,
                                     teardown_distributed)
from mmseg_ext.engine.tool_cli import (add_debug_arg, check_unit_interval,
                                       note_partial, tool_main)
from mmseg_ext.tasks import task_names
from mmseg_ext.utils.dist import is_main_process
from mmseg_ext.utils.ensemble import STRATEGIES


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[2:]))
    members = parser.add_argument_group('members')
    members.add_argument(
        '--member',
        nargs=2,
        action='append',
        default=[],
        metavar=('CONFIG', 'CHECKPOINT'),
        help='a model member (repeatable)')
    members.add_argument(
        '--prob-dirs',
        nargs='+',
        default=[],
        metavar='DIR',
        help='folders of saved {image_stem}.npy uint8 (C, H, W) '
        'probabilities, one member each (after the --member ones)')
    members.add_argument(
        '--save-probs',
        metavar='DIR',
        help="save each model member's probabilities under "
        'DIR/{i}_{config stem}/')
    members.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every member config, e.g. '
        'test_dataloader.dataset.data_root=data/x')
    members.add_argument(
        '--device',
        default=None,
        help="model device (default: 'cuda:0' "
        "if available, else 'cpu'; with a launcher, this process's GPU)")
    add_launcher_args(members)

    merge = parser.add_argument_group('merging')
    merge.add_argument('--strategy', choices=STRATEGIES, default='soft')
    merge.add_argument(
        '--weights',
        nargs='+',
        help='soft: E weights, or a JSON/CSV [E, C] table path')
    merge.add_argument(
        '--k', type=int, help='hard: votes needed '
        '(default: majority)')
    merge.add_argument(
        '--member-threshold',
        type=float,
        default=0.5,
        help='hard: binarisation threshold of each member (default 0.5)')
    merge.add_argument(
        '--scores',
        nargs='+',
        metavar='JSON',
        help='classwise: per-class JSONs, one per member')
    merge.add_argument(
        '--score-key',
        default='dice',
        help='classwise: the key of the per-class JSONs (default dice)')
    merge.add_argument(
        '--decision',
        choices=DECISIONS,
        help='threshold (multi-label/binary masks) or argmax (softmax '
        'label map); default: argmax if all model members are softmax')
    merge.add_argument(
        '--classes',
        nargs='+',
        help='class names (default: from the '
        "first model member's dataset, the scores JSONs, the task, or "
        'indices)')
    merge.add_argument(
        '--task',
        choices=task_names(),
        help="the task (default: that of the first model member's "
        'dataset): class names, ground-truth format, submission CSV')

    split = parser.add_argument_group('split and outputs')
    split.add_argument('--split', choices=('val', 'test'), default='test')
    split.add_argument(
        '--out-dir',
        help='val: thresholds.json and thresholds.png; test: one mask PNG '
        'per image')
    split.add_argument(
        '--gt-dir',
        help='val with only --prob-dirs: ground truth {stem}{gt-suffix}')
    split.add_argument(
        '--gt-format',
        choices=('packed', 'label'),
        help="ground truth of --gt-dir (default: the task's, else packed)")
    split.add_argument('--gt-suffix', default='.png')
    split.add_argument(
        '--search-thresholds',
        nargs='+',
        type=float,
        help='val: candidate thresholds (default 0.05 .. 0.95; hard: the '
        'k values)')
    split.add_argument(
        '--postprocess',
        action='store_true',
        help='val: also choose per-class post-processing (lcc/min_area)')
    split.add_argument(
        '--pp-candidates',
        nargs='+',
        default=['lcc', 'min_area:64'],
        help="val: post-processing candidates, 'lcc' and/or 'min_area:N'")
    split.add_argument(
        '--crf',
        action='store_true',
        help='val: also choose the classes that keep the dense CRF '
        '(pip install pydensecrf2)')
    split.add_argument(
        '--crf-params',
        nargs='+',
        action=DictAction,
        help='val: CRF parameters, e.g. iterations=5 bilateral_srgb=10 '
        '(default: mmseg_ext.utils.dense_crf.DEFAULT_CRF_PARAMS)')
    split.add_argument(
        '--img-dir',
        help='--crf with --prob-dirs members only: the images, '
        'DIR/{stem}{img-suffix} or the one of that name in its subfolders')
    split.add_argument(
        '--thresholds',
        help='test: a threshold for every class or a thresholds.json of a '
        '--split val run (default 0.5; hard: from --k)')
    split.add_argument(
        '--no-postprocess',
        action='store_true',
        help="test: ignore the thresholds.json's post-processing plan")
    split.add_argument(
        '--no-crf',
        action='store_true',
        help="test: ignore the thresholds.json's dense-CRF classes")
    split.add_argument(
        '--submission',
        choices=task_names(),
        help='the task whose submission CSV --out gets (default: --task or '
        "the first member's)")
    split.add_argument('--out', help='the submission CSV')
    split.add_argument(
        '--class-index',
        type=int,
        help='building: the building channel (default 0; softmax with 2 '
        'classes: 1)')
    split.add_argument(
        '--img-suffix',
        default='.png',
        help='image name suffix for --prob-dirs members (hand-bone '
        'image_name = stem + suffix)')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.strategy == 'hard' and args.search_thresholds is not None:
        bad = [k for k in args.search_thresholds if not k >= 1 or k != int(k)]
        if bad:
            parser.error('--search-thresholds of the hard strategy are '
                         'votes needed k (ints >= 1), but got '
                         f'{", ".join(repr(k) for k in bad)}')
    else:
        msg = check_unit_interval(args.search_thresholds,
                                  '--search-thresholds')
        if msg:
            parser.error(msg)
    msg = check_unit_interval(args.member_threshold, '--member-threshold')
    if msg:
        parser.error(msg)
    if args.k is not None and args.k < 1:
        parser.error(f'--k should be >= 1, but got {args.k}')
    return args


def parse_pp_candidates(items):
    """``['lcc', 'min_area:64']`` -> ``[['lcc'], ['min_area', 64]]``."""
    out = []
    for item in items:
        if item == 'lcc':
            out.append(['lcc'])
            continue
        name, _, value = item.partition(':')
        if name != 'min_area' or not value.isdigit():
            raise ValueError("`--pp-candidates` should be 'lcc' or "
                             f"'min_area:N', but got {item!r}")
        out.append(['min_area', int(value)])
    return out


def build_ensemble(args, device: str = 'cpu') -> Ensemble:
    device = args.device or device
    num_members = len(args.member) + len(args.prob_dirs)
    for option, value, strategy in (('--weights', args.weights,
                                     'soft'), ('--k', args.k, 'hard'),
                                    ('--scores', args.scores, 'classwise')):
        if value is not None and args.strategy != strategy:
            raise ValueError(f'{option} applies to --strategy {strategy}, '
                             f'but the strategy is {args.strategy}')
    if args.strategy == 'classwise' and args.scores is None:
        raise ValueError('--strategy classwise needs --scores: one '
                         'per-class JSON per member')
    # Option counts are checked before any model is built.
    weights = None if args.weights is None else load_weights(
        args.weights, num_members)
    scores, classes = None, args.classes
    if args.scores is not None:
        if len(args.scores) != num_members:
            raise ValueError(f'--scores should give one per-class JSON per '
                             f'member ({num_members}), but got '
                             f'{len(args.scores)}')
        scores, score_classes = load_scores(args.scores, args.score_key)
        classes = classes or score_classes
    members = [
        ModelMember(cfg, ckpt, args.split, args.cfg_options, device)
        for cfg, ckpt in args.member
    ] + [ProbDirMember(d) for d in args.prob_dirs]
    return Ensemble(
        members,
        strategy=args.strategy,
        weights=weights,
        scores=scores,
        k=args.k,
        member_threshold=args.member_threshold,
        decision=args.decision,
        gt_dir=args.gt_dir,
        gt_format=args.gt_format,
        gt_suffix=args.gt_suffix,
        classes=classes,
        save_probs_dir=args.save_probs,
        img_suffix=args.img_suffix,
        task=args.task)


@tool_main('tools/ensemble.py')
def main(argv=None):
    args = parse_args(argv)
    device = start_tool_distributed(args, 'tools/ensemble.py')
    say = print if is_main_process() else (lambda *a, **k: None)
    if not args.member and not args.prob_dirs:
        raise ValueError('give members: --member CONFIG CHECKPOINT '
                         '(repeatable) and/or --prob-dirs DIR ...')
    if args.split == 'val' and not args.out_dir:
        raise ValueError('--split val needs --out-dir (thresholds.json '
                         'and thresholds.png go there)')
    if args.split == 'val' and (args.thresholds or args.submission):
        raise ValueError('--thresholds and --submission apply to '
                         '--split test')
    pp_candidates = parse_pp_candidates(args.pp_candidates)
    if args.crf:
        if args.split != 'val':
            raise ValueError('--crf applies to --split val (the test split '
                             "applies the thresholds.json's CRF classes; "
                             '--no-crf skips them)')
        require_crf()  # before any model is built
    ensemble = build_ensemble(args, device)
    say(
        f'ensemble of {len(ensemble.members)} members '
        f'({args.strategy}, {ensemble.decision}) over '
        f'{len(ensemble)} images ({args.split})',
        flush=True)
    if args.split == 'val':
        candidates, k_candidates = args.search_thresholds, None
        if candidates is not None and args.strategy == 'hard':
            candidates, k_candidates = None, [int(k) for k in candidates]
        note_partial(
            f'the JSON and plot of {args.out_dir} were not written' +
            (f'; the .npy files written so far in {args.save_probs} are '
             'complete' if args.save_probs else ''))
        result = ensemble_val(
            ensemble,
            args.out_dir,
            candidates=candidates,
            postprocess=args.postprocess,
            pp_candidates=pp_candidates,
            k_candidates=k_candidates,
            crf=args.crf,
            crf_params=args.crf_params,
            img_dir=args.img_dir)
        name = 'val_scores.json' if ensemble.decision == 'argmax' \
            else 'thresholds.json'
        say(f'\nmDice {result["mDice"]:.4f} over '
            f'{result["num_images"]} images; wrote '
            f'{osp.join(args.out_dir, name)}')
    else:
        submission = args.submission
        if submission is None and args.out:
            if ensemble.task is None:
                raise ValueError('--out needs the task of the submission:'
                                 f' --submission {"|".join(task_names())}'
                                 ' (or --task)')
            submission = ensemble.task
        done = [f'the masks written so far in {args.out_dir} are '
                'complete'] if args.out_dir else []
        if args.save_probs:
            done.append('the .npy files written so far in '
                        f'{args.save_probs} are complete')
        if args.out:
            done.append(f'{args.out} was not written')
        note_partial('; '.join(done) or None)
        result = ensemble_test(
            ensemble,
            out_dir=args.out_dir,
            thresholds=args.thresholds,
            use_postprocess=not args.no_postprocess,
            submission=submission,
            submission_file=args.out,
            class_index=args.class_index,
            use_crf=not args.no_crf,
            img_dir=args.img_dir)
        if result['crf']:
            say(f'dense CRF on {result["crf"]["classes"]}: '
                f'{result["crf"]["seconds_per_image"]:.2f} s per image')
        outputs = [p for p in (args.out_dir, args.out) if p]
        say(f'\n{result["num_images"]} images; wrote '
            f'{", ".join(outputs)}')
    note_partial(None)
    teardown_distributed()


if __name__ == '__main__':
    main()  # through tool_main: one-line errors, exit 2
