# Copyright (c) mmseg_ext contributors. All rights reserved.
"""ROI specialist for the crowded carpal region of the hand-bone X-rays.

Two subcommands:

- ``make-dataset SRC DST``: crop every converted training image of the
  hand-bone dataset ``SRC`` (and its packed label) around the box of the
  carpal bones in the ground truth (plus ``--margin``, optionally moved by
  ``--jitter``) into ``DST`` with the same layout (``train/DCM``,
  ``train/packed_labels``, ``splits/`` copied), so ``HandBoneDataset``
  reads it with the same folds. Images without any carpal pixel are
  skipped (listed in the summary and left out of the split files).
  ``DST/roi_boxes.json`` records each image's box
  (``x1, y1, x2, y2`` in the original image, exclusive ends).
- ``paste PRED_DIR CONFIG CHECKPOINT --img-dir DIR --out-dir OUT``: for each
  packed prediction of the general model in ``PRED_DIR`` (as written by
  ``tools/hand_bone_submission.py --save-pred-dir``), find the carpal box
  in that prediction (same ``--margin``), run the specialist on the
  image's crop (``mmseg.apis.inference_model``), replace the carpal classes
  inside the box by the specialist's (outside it the general prediction is
  kept; ``--outside clear`` clears it) and write a packed PNG to
  ``OUT/{same relative path}``. Predictions without a carpal pixel are
  copied unchanged. Boxes are in the original orientation; a specialist
  trained with ``HandBoneDataset(unify_hands=True)`` (its config's test or
  train dataset) gets a left hand's crop flipped and its prediction is
  flipped back (``make-dataset`` keeps the ``_L``/``_R`` names, so the
  crop dataset unifies the same way). Feed ``OUT`` to
  ``tools/hand_bone_submission.py --pred-dir OUT``. Multi-process:
  ``bash tools/dist_tool.sh tools/roi_specialist.py N paste ...`` shards
  the predictions over the processes (one GPU each).

The specialist predicts either all 29 classes (the carpal rows are used)
or only the 8 carpals, in ``HAND_BONE_CLASSES`` order.

Examples:
    python tools/roi_specialist.py make-dataset data/hand_bone \\
        data/hand_bone_carpal_roi --margin 0.15 --jitter 0.05
    python tools/train.py \\
        configs/segformer/segformer_mit-b0_1xb8-20k_carpal-roi-512x512.py
    python tools/hand_bone_submission.py GENERAL_CFG GENERAL_CKPT \\
        --out general.csv --save-pred-dir work_dirs/general_preds
    python tools/roi_specialist.py paste work_dirs/general_preds \\
        configs/segformer/segformer_mit-b0_1xb8-20k_carpal-roi-512x512.py \\
        work_dirs/roi/best_mDice_iter_20000.pth \\
        --img-dir data/hand_bone/test/DCM --out-dir work_dirs/roi_preds
    python tools/hand_bone_submission.py --pred-dir work_dirs/roi_preds \\
        --out submission.csv --data-root data/hand_bone
"""
import argparse
import os
import os.path as osp
import shutil
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
import numpy as np
from mmengine.utils import ProgressBar

from mmseg_ext.datasets.converters.hand_bone import (HAND_BONE_LAYOUT,
                                                     list_hand_bone_images)
from mmseg_ext.datasets.hand_bone import HAND_BONE_CLASSES
from mmseg_ext.datasets.transforms.annotation_loaders import \
    drop_annotation_loading
from mmseg_ext.engine.launch import (add_launcher_args,
                                     start_tool_distributed,
                                     teardown_distributed)
from mmseg_ext.engine.tool_cli import (add_debug_arg, load_config,
                                       note_partial, tool_main)
from mmseg_ext.utils.dist import (advance_progress, is_main_process, shard,
                                  sum_over_ranks, sync_errors)
from mmseg_ext.utils.io import (atomic_path, dump_json_atomic,
                                imwrite_atomic)
from mmseg_ext.utils.multilabel import (pack_multilabel, read_packed_label,
                                        unpack_multilabel, write_packed_label)
from mmseg_ext.utils.roi import (CARPAL_CLASS_IDS, crop_roi, jitter_box,
                                 paste_roi, roi_from_masks)

C = len(HAND_BONE_CLASSES)


def _margin(text: str):
    """``0.1`` -> fraction, ``32`` -> pixels."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _read_split(path: str) -> list:
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f
                if line.strip() and not line.startswith('#')]


def make_dataset(src: str,
                 dst: str,
                 margin=0.1,
                 min_size: int = 0,
                 jitter: float = 0.0,
                 seed: int = 0,
                 class_ids=CARPAL_CLASS_IDS) -> dict:
    """Write the carpal-crop dataset ``dst`` from the converted ``src``.

    Args:
        src (str): Converted hand-bone root (``splits/all.txt``,
            ``train/DCM``, ``train/packed_labels``).
        dst (str): New root (same layout). Must differ from ``src``.
        margin (int | float): Box margin (fraction or pixels, see
            :func:`~mmseg_ext.utils.roi.roi_from_masks`). Defaults to 0.1.
        min_size (int): Minimum box side in pixels. Defaults to 0.
        jitter (float): Move each box side by up to this fraction of the
            box side (never cutting the tight box). Defaults to 0.
        seed (int): Seed of the jitter. Defaults to 0.
        class_ids (Sequence[int]): Classes of the region. Defaults to the
            carpals.

    Returns:
        dict: ``written`` (relative paths), ``skipped`` (no region pixel)
        and ``boxes`` (relative path -> box).
    """
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError(f'`dst` should differ from `src`, but both are '
                         f'{src!r}')
    split_dir = osp.join(src, HAND_BONE_LAYOUT['splits'])
    all_txt = osp.join(split_dir, 'all.txt')
    if not osp.isfile(all_txt):
        raise FileNotFoundError(
            f'{all_txt} does not exist; run `python tools/dataset_converters/'
            f'hand_bone.py {src}` first')
    rels = _read_split(all_txt)
    rng = np.random.default_rng(seed)
    boxes, skipped = {}, []
    bar = ProgressBar(len(rels), file=sys.stdout)
    for rel in rels:
        img_path = osp.join(src, HAND_BONE_LAYOUT['train_images'], rel)
        label_path = osp.join(src, HAND_BONE_LAYOUT['labels'], rel)
        img = cv2.imread(img_path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FileNotFoundError(f'{img_path}: image cannot be read')
        packed = read_packed_label(label_path, C)
        if packed.shape[:2] != img.shape[:2]:
            raise ValueError(f'{label_path}: label of shape '
                             f'{packed.shape[:2]} should have the size '
                             f'{img.shape[:2]} of {img_path}')
        masks = unpack_multilabel(packed, C)
        box = roi_from_masks(masks, class_ids, margin, min_size)
        if box is None:
            skipped.append(rel)
            bar.update()
            continue
        if jitter:
            tight = roi_from_masks(masks, class_ids, 0)
            box = jitter_box(box, img.shape[:2], jitter, rng, keep=tight)
        imwrite_atomic(
            np.ascontiguousarray(crop_roi(img, box)),
            osp.join(dst, HAND_BONE_LAYOUT['train_images'], rel))
        write_packed_label(
            osp.join(dst, HAND_BONE_LAYOUT['labels'], rel),
            np.ascontiguousarray(crop_roi(packed, box)))
        boxes[rel] = list(box)
        bar.update()
    bar.file.write('\n')
    # same folds: the split files, minus the skipped images
    out_split_dir = osp.join(dst, HAND_BONE_LAYOUT['splits'])
    os.makedirs(out_split_dir, exist_ok=True)
    dropped = set(skipped)
    for name in sorted(os.listdir(split_dir)):
        path = osp.join(split_dir, name)
        if not name.endswith('.txt'):
            if osp.isfile(path):
                shutil.copy2(path, osp.join(out_split_dir, name))
            continue
        lines = [r for r in _read_split(path) if r not in dropped]
        with atomic_path(osp.join(out_split_dir, name)) as tmp:
            with open(tmp, 'w', encoding='utf-8') as f:
                f.write(''.join(line + '\n' for line in lines))
    dump_json_atomic(
        dict(source=osp.abspath(src), margin=margin, min_size=min_size,
             jitter=jitter, seed=seed, class_ids=list(class_ids),
             boxes=boxes, skipped=skipped), osp.join(dst, 'roi_boxes.json'))
    return dict(written=sorted(boxes), skipped=skipped, boxes=boxes)


def _specialist_rows(num_out: int, class_ids) -> list:
    if num_out == C:
        return list(class_ids)
    if num_out == len(class_ids):
        return list(range(len(class_ids)))
    raise ValueError(
        f'the specialist predicts {num_out} classes; it should predict all '
        f'{C} hand-bone classes or only the {len(class_ids)} ROI classes')


def paste_predictions(pred_dir: str,
                      config: str,
                      checkpoint: str,
                      img_dir: str,
                      out_dir: str,
                      margin=0.1,
                      min_size: int = 0,
                      outside: str = 'keep',
                      device: str = 'cpu',
                      class_ids=CARPAL_CLASS_IDS) -> dict:
    """Run the specialist on each prediction's ROI and paste it back.

    Args:
        pred_dir (str): The general model's packed PNGs (any depth).
        config (str): Specialist config.
        checkpoint (str): Specialist checkpoint.
        img_dir (str): Images, found by file name (any depth).
        out_dir (str): Output folder (same relative paths as ``pred_dir``).
        margin (int | float): Box margin. Defaults to 0.1.
        min_size (int): Minimum box side. Defaults to 0.
        outside (str): ``'keep'`` or ``'clear'`` (see
            :func:`~mmseg_ext.utils.roi.paste_roi`). Defaults to ``'keep'``.
        device (str): Torch device. Defaults to ``'cpu'``.
        class_ids (Sequence[int]): ROI classes. Defaults to the carpals.

    With a process group (``--launcher``) every rank takes its share of
    the predictions (:func:`mmseg_ext.utils.dist.shard`), writes their
    files, and all ranks return the complete, sorted lists.

    Returns:
        dict: ``pasted`` and ``unchanged`` (no ROI pixel) relative paths.
    """
    from mmseg.apis import init_model

    preds = list_hand_bone_images(pred_dir) if osp.isdir(pred_dir) else []
    if not preds:
        raise FileNotFoundError(f'no packed prediction PNG under {pred_dir}')
    images = {}
    for rel in (list_hand_bone_images(img_dir) if osp.isdir(img_dir) else
                []):
        images.setdefault(osp.basename(rel), osp.join(img_dir, rel))
    missing = [p for p in preds if osp.basename(p) not in images]
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} prediction(s) of {pred_dir} have no image of '
            f'the same name under {img_dir}, e.g. {missing[0]}')
    model = init_model(config, checkpoint, device=device)
    unify = specialist_unify_sides(model.cfg)
    # mmseg's inference_model reads `cfg.test_pipeline`; the crops have no
    # label: no annotation loading
    pipeline = model.cfg.get('test_pipeline', None) or \
        model.cfg.test_dataloader.dataset.pipeline
    model.cfg.test_pipeline = drop_annotation_loading(pipeline)[0]
    pasted, unchanged, error = [], [], None
    bar = ProgressBar(len(preds), file=sys.stdout) if is_main_process() \
        else None
    try:
        for position in shard(len(preds)):
            _paste_one(model, preds[position], pred_dir, images, out_dir,
                       margin, min_size, outside, class_ids, pasted,
                       unchanged, unify, img_dir)
            advance_progress(bar, position, len(preds))
    except Exception as err:  # noqa: B902 (raised on every rank)
        error = err
    if bar is not None:
        bar.file.write('\n')
    sync_errors(error)
    return dict(pasted=sorted(sum_over_ranks(pasted)),
                unchanged=sorted(sum_over_ranks(unchanged)))


def specialist_unify_sides(cfg):
    """``flip(rel) -> bool`` if the specialist was trained on unified hands
    (its test, else train, ``HandBoneDataset`` has ``unify_hands=True``:
    a left hand's crop is flipped before it and its prediction flipped
    back), else None. The side comes from the dataset's ``hand_side`` and
    the ``_L``/``_R`` name, as in :class:`HandBoneDataset`."""
    from mmseg_ext.datasets.hand_bone import (load_hand_side_mapping,
                                              resolve_hand_side)
    ds = None
    for key in ('test_dataloader', 'train_dataloader'):
        ds = (cfg.get(key) or {}).get('dataset')
        while isinstance(ds, dict) and 'unify_hands' not in ds and \
                isinstance(ds.get('dataset'), dict):
            ds = ds['dataset']  # dataset wrappers
        if isinstance(ds, dict) and 'unify_hands' in ds:
            break
    if not isinstance(ds, dict) or not ds.get('unify_hands'):
        return None
    hand_side = ds.get('hand_side')
    if isinstance(hand_side, str):
        hand_side = load_hand_side_mapping(hand_side)
    keep = ds.get('unknown_side', 'error') == 'keep'

    def flip(rel: str) -> bool:
        side = resolve_hand_side(rel, hand_side)
        if side is None and not keep:
            raise ValueError(
                f'{rel}: the specialist unifies hands (unify_hands=True) but '
                'the side of this image is unknown: its name has no _L/_R '
                "suffix and the config's `hand_side` does not list it")
        return side == 'L'

    return flip


def _paste_one(model, rel, pred_dir, images, out_dir, margin, min_size,
               outside, class_ids, pasted, unchanged, unify=None,
               img_dir=None) -> None:
    """Paste the specialist into the prediction ``rel``; append ``rel`` to
    ``pasted`` or ``unchanged``. Boxes, crops and pastes are in the
    original orientation; with ``unify`` (:func:`specialist_unify_sides`)
    a left hand's crop is flipped for the specialist and its prediction
    flipped back."""
    from mmseg.apis import inference_model

    img_path = images[osp.basename(rel)]
    packed = read_packed_label(osp.join(pred_dir, rel), C)
    masks = unpack_multilabel(packed, C) == 1
    out_path = osp.join(out_dir, rel)
    box = roi_from_masks(masks, class_ids, margin, min_size)
    if box is None:
        write_packed_label(out_path, pack_multilabel(masks))
        unchanged.append(rel)
        return
    img = cv2.imread(img_path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'{img_path}: image cannot be read')
    if img.shape[:2] != masks.shape[1:]:
        raise ValueError(
            f'{osp.join(pred_dir, rel)}: prediction of shape '
            f'{masks.shape[1:]} should have the size {img.shape[:2]} of '
            f'{img_path}')
    crop = np.ascontiguousarray(crop_roi(img, box))
    flip = unify is not None and unify(
        osp.relpath(img_path, img_dir).replace(os.sep, '/')
        if img_dir else rel)
    if flip:
        crop = np.ascontiguousarray(crop[:, ::-1])
    result = inference_model(model, crop)
    roi = result.pred_sem_seg.data.cpu().numpy()
    if flip:  # back to the original orientation
        roi, crop = roi[..., ::-1], crop[:, ::-1]
    if roi.ndim != 3 or roi.shape[1:] != crop.shape[:2]:
        raise ValueError(
            f'the specialist should predict (C, h, w) = (C, '
            f'{crop.shape[0]}, {crop.shape[1]}) masks at the crop size '
            f'(MultiLabelEncoderDecoder), but got {tuple(roi.shape)}')
    roi = roi[_specialist_rows(roi.shape[0], class_ids)] != 0
    masks = paste_roi(masks, roi, box, class_ids, outside=outside)
    write_packed_label(out_path, pack_multilabel(masks))
    pasted.append(rel)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='ROI (carpal) specialist: crop dataset, paste back')
    add_launcher_args(parser)  # paste only; before the command
    sub = parser.add_subparsers(dest='command', required=True)
    make = sub.add_parser('make-dataset',
                          help='crop a converted dataset around the carpals')
    make.add_argument('src', help='converted hand-bone dataset root')
    make.add_argument('dst', help='new dataset root')
    make.add_argument('--seed', type=int, default=0)
    make.add_argument('--jitter', type=float, default=0.0,
                      help='move each box side by up to this fraction')
    paste = sub.add_parser('paste', help='paste the specialist into saved '
                           'general predictions')
    paste.add_argument('pred_dir', help='packed PNGs of the general model')
    paste.add_argument('config', help='specialist config')
    paste.add_argument('checkpoint', help='specialist checkpoint')
    paste.add_argument('--img-dir', required=True,
                       help='images (e.g. data/hand_bone/test/DCM)')
    paste.add_argument('--out-dir', required=True, help='output folder')
    paste.add_argument('--outside', choices=('keep', 'clear'),
                       default='keep', help='ROI classes outside the box')
    paste.add_argument(
        '--device', default=None, help="default: 'cpu'; with a launcher, "
        "this process's GPU (or 'cpu' without CUDA)")
    for p in (make, paste):
        p.add_argument('--margin', type=_margin, default=0.1,
                       help='box margin: a fraction (0.1) or pixels (32)')
        p.add_argument('--min-size', type=int, default=0,
                       help='minimum box side in pixels')
        add_debug_arg(p)
    args = parser.parse_args(argv)
    if args.min_size < 0:
        parser.error(f'--min-size should be >= 0, but got {args.min_size}')
    if not args.margin >= 0:  # NaN too
        parser.error(f'--margin should be a fraction >= 0 or pixels >= 0, '
                     f'but got {args.margin}')
    return args


@tool_main('tools/roi_specialist.py')
def main(argv=None):
    args = parse_args(argv)
    if args.command == 'make-dataset':
        # Crops are written atomically image by image; the split lists and
        # roi_boxes.json at the end.
        note_partial(f'the crops written so far in {args.dst} are complete;'
                     ' its splits and roi_boxes.json were not written')
        result = make_dataset(args.src, args.dst, args.margin, args.min_size,
                              args.jitter, args.seed)
        print(f"cropped {len(result['written'])} image(s) into {args.dst}, "
              f"skipped {len(result['skipped'])} without carpals")
        if result['skipped']:
            print('skipped: ' + ', '.join(result['skipped'][:20]))
        return
    device = start_tool_distributed(args, 'tools/roi_specialist.py')
    if args.device is None:
        device = device if args.launcher != 'none' else 'cpu'
    else:
        device = args.device
    load_config(args.config)  # a bad path: one line naming it
    # Every output PNG is written atomically, one per prediction.
    note_partial(f'the predictions written so far in {args.out_dir} are '
                 'complete')
    result = paste_predictions(args.pred_dir, args.config, args.checkpoint,
                               args.img_dir, args.out_dir, args.margin,
                               args.min_size, args.outside, device)
    note_partial(None)
    main_process = is_main_process()
    teardown_distributed()
    if main_process:
        print(f"pasted the specialist into {len(result['pasted'])} "
              f"prediction(s), {len(result['unchanged'])} without carpals "
              f'copied unchanged, into {args.out_dir}')
        print('submission: python tools/hand_bone_submission.py --pred-dir '
              f'{args.out_dir} --out submission.csv')


if __name__ == '__main__':
    main()
