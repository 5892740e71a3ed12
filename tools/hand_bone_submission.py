# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Write the hand-bone competition submission CSV (image_name,class,rle).

Two sources of predictions:

- a model: ``CONFIG CHECKPOINT``. The config's test dataset is switched to
  ``split='test'`` (``--data-root`` overrides its root), annotation loading
  is dropped from its pipeline, and mmengine's ``Runner.test()`` runs with
  the test evaluator replaced by ``HandBoneSubmissionMetric`` (one CSV
  also under DDP: ``--launcher pytorch``, CPU ``gloo`` when there is no
  CUDA device). ``--save-pred-dir`` also keeps each prediction as a packed
  PNG.
- saved predictions: ``--pred-dir DIR`` with one packed multi-label PNG per
  image (``DIR/**/{image_name}``, as written by ``--save-pred-dir`` or
  :func:`mmseg_ext.utils.multilabel.write_packed_label`); no model runs.
  With ``--data-root``, every test image must have a prediction of its
  size.

Examples:
    python tools/hand_bone_submission.py \
        configs/segformer/segformer_mit-b0_1xb2-20k_handbone-1024x1024.py \
        work_dirs/segformer/iter_20000.pth --out submission.csv \
        --data-root data/hand_bone
    bash tools/dist_test.sh ...  # or: torchrun --nproc-per-node 2 \
        tools/hand_bone_submission.py CONFIG CKPT --out s.csv \
        --launcher pytorch
    python tools/hand_bone_submission.py --pred-dir work_dirs/preds \
        --out submission.csv --data-root data/hand_bone
"""
import argparse
import os
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

import cv2
from mmengine.config import DictAction
from mmengine.utils import ProgressBar

from mmseg_ext.datasets.converters.hand_bone import (HAND_BONE_LAYOUT,
                                                     list_hand_bone_images)
from mmseg_ext.datasets.hand_bone import HAND_BONE_CLASSES
from mmseg_ext.datasets.transforms.annotation_loaders import \
    drop_annotation_loading
from mmseg_ext.engine.tool_cli import (add_debug_arg, load_config,
                                       note_partial, tool_main)
from mmseg_ext.evaluation.metrics.hand_bone_submission import (
    encode_multilabel_masks, write_hand_bone_csv)
from mmseg_ext.tasks import task_from_dataset
from mmseg_ext.utils.multilabel import read_packed_label, unpack_multilabel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[2:]))
    parser.add_argument('config', nargs='?', help='model config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file')
    parser.add_argument('--out', required=True, help='submission CSV to write')
    parser.add_argument(
        '--pred-dir',
        help='read saved packed predictions from this folder instead of '
        'running a model')
    parser.add_argument(
        '--save-pred-dir',
        help='(model mode) also save each prediction as a packed PNG here')
    parser.add_argument(
        '--data-root',
        help='dataset root (test images under test/DCM); overrides the '
        "config's")
    parser.add_argument('--work-dir', help='(model mode) the work dir')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.pred_dir is None and (args.config is None
                                  or args.checkpoint is None):
        parser.error('give CONFIG and CHECKPOINT to run a model, or '
                     '--pred-dir DIR to read saved predictions')
    if args.pred_dir is not None and args.config is not None:
        parser.error('give either CONFIG CHECKPOINT or --pred-dir, not both')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def submission_from_pred_dir(pred_dir: str,
                             out: str,
                             data_root: str = None,
                             classes=HAND_BONE_CLASSES) -> int:
    """Turn a folder of packed prediction PNGs into a submission CSV.

    Args:
        pred_dir (str): Folder with ``**/{image_name}`` packed PNGs.
        out (str): CSV to write.
        data_root (str, optional): With it, each image of
            ``{data_root}/test/DCM`` must have a prediction of its size, and
            no other prediction may be there. Defaults to None.
        classes (Sequence[str]): Defaults to the 29 classes.

    Returns:
        int: Rows written.

    Raises:
        FileNotFoundError: no prediction, or (with ``data_root``) a missing
            one.
        ValueError: duplicated names, a prediction of the wrong size or an
            unexpected one.
    """
    preds = list_hand_bone_images(pred_dir) if osp.isdir(pred_dir) else []
    if not preds:
        raise FileNotFoundError(f'no packed prediction PNG under {pred_dir}')
    by_name = {}
    for rel in preds:
        name = osp.basename(rel)
        if name in by_name:
            raise ValueError(
                f'{pred_dir}: two predictions named {name}: {by_name[name]} '
                f'and {rel}')
        by_name[name] = rel
    expected = None
    if data_root is not None:
        test_dir = osp.join(data_root, HAND_BONE_LAYOUT['test_images'])
        expected = {osp.basename(r): osp.join(test_dir, r)
                    for r in list_hand_bone_images(test_dir)}
        missing = sorted(set(expected) - set(by_name))
        extra = sorted(set(by_name) - set(expected))
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} test image(s) of {test_dir} have no '
                f'prediction in {pred_dir}, e.g. {missing[0]}')
        if extra:
            raise ValueError(
                f'{len(extra)} prediction(s) in {pred_dir} match no test '
                f'image of {test_dir}, e.g. {extra[0]}')
    records = []
    bar = ProgressBar(len(by_name), file=sys.stdout)
    for name in sorted(by_name):
        path = osp.join(pred_dir, by_name[name])
        packed = read_packed_label(path, len(classes))
        if expected is not None:
            img = cv2.imread(expected[name], cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ValueError(f'{expected[name]}: image cannot be read')
            if img.shape[:2] != packed.shape[:2]:
                raise ValueError(
                    f'{path}: prediction of shape {packed.shape[:2]} should '
                    f'have the size {img.shape[:2]} of {expected[name]}')
        masks = unpack_multilabel(packed, len(classes)) == 1
        records.append((name, encode_multilabel_masks(masks)))
        bar.update()
    bar.file.write('\n')
    return write_hand_bone_csv(out, records, classes)


def run_model(args) -> None:
    from mmengine.runner import Runner

    from mmseg_ext.engine.launch import (drop_train_only_hooks,
                                         setup_cpu_distributed,
                                         teardown_distributed)

    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint

    dataset = cfg.test_dataloader.dataset
    # The task's arguments that select the test images (hand bone:
    # split='test'); else a `split` argument is set to 'test'.
    task = task_from_dataset(dataset)
    split_args = task.test_split_args() if task is not None and \
        dataset.get('type') in task.dataset_types else {}
    if not split_args and 'split' in dataset:
        split_args = dict(split='test')
    dataset.update(split_args)
    if args.data_root is not None:
        dataset.data_root = args.data_root
    dataset.pipeline, dropped = drop_annotation_loading(
        dataset.get('pipeline', []))
    if dropped:
        print('test images have no labels: dropped annotation loading from '
              'the test pipeline')
    cfg.test_evaluator = dict(
        type='HandBoneSubmissionMetric',
        output_file=osp.abspath(args.out),
        pred_dir=None if args.save_pred_dir is None else osp.abspath(
            args.save_pred_dir))
    if cfg.get('test_cfg', None) is None:
        cfg.test_cfg = dict(type='TestLoop')

    setup_cpu_distributed(cfg, args.launcher)
    drop_train_only_hooks(cfg)
    # The CSV is written at the end; --save-pred-dir PNGs image by image.
    note_partial(f'{args.out} was not written' + (
        f'; the PNGs written so far in {args.save_pred_dir} are complete'
        if args.save_pred_dir else ''))
    runner = Runner.from_cfg(cfg)
    runner.test()
    teardown_distributed()


@tool_main('tools/hand_bone_submission.py')
def main(argv=None):
    args = parse_args(argv)
    if args.pred_dir is not None:
        note_partial(f'{args.out} was not written')  # written at the end
        rows = submission_from_pred_dir(args.pred_dir, args.out,
                                        args.data_root)
        note_partial(None)
        print(f'wrote {rows} rows to {args.out}')
        return
    run_model(args)


if __name__ == '__main__':
    main()
