# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Ensembling segmentors one image at a time (``tools/ensemble.py``).

Members are segmentors (``config`` + ``checkpoint``: :class:`ModelMember`)
or folders of saved probability maps (:class:`ProbDirMember`). Per image,
each member's ``(C, H, W)`` probabilities are quantised to uint8 right away
(:func:`mmseg_ext.utils.ensemble.quantize_probs`), then merged by a strategy
of :mod:`mmseg_ext.utils.ensemble`:

- ``'soft'``: :func:`soft_vote`, weights ``(E,)`` or ``(E, C)``;
- ``'hard'``: :func:`vote_fraction`, the fraction of members voting for a
  class (a ``k``-of-``E`` vote is ``fraction > (k - 0.5) / E``, exactly
  :func:`hard_vote`);
- ``'classwise'``: :func:`classwise_select` with ``(E, C)`` validation
  scores (per-class JSONs of ``MultiLabelDiceMetric``/``PerClassIoUMetric``).

and decided either by per-class thresholds (``'threshold'``: multi-label
and binary members, ``(C, H, W)`` masks) or by ``'argmax'`` (softmax
members, an ``(H, W)`` label map).

Probability files: one ``{image_stem}.npy`` per image, a uint8 ``(C, H, W)``
array from :func:`quantize_probs` (``round(255 p)``), written by
:func:`save_probs` (``tools/ensemble.py --save-probs``).

Streaming: :class:`Ensemble` yields one image at a time; only that image's
``E`` uint8 maps and its merged ``(C, H, W)`` float32 map are alive, and the
merge runs over chunks of classes, so peak memory does not grow with the
number of images. :func:`ensemble_val` (threshold search, post-processing
selection) and :func:`ensemble_test` (masks, submission CSV) consume it.

Multi-process (``torchrun``, ``tools/ensemble.py --launcher pytorch``):
with a process group, :func:`ensemble_val` and :func:`ensemble_test` shard
the images by rank (:func:`mmseg_ext.utils.dist.shard`); every rank runs
all members on its images and writes its own masks / probability files,
threshold and post-processing sums are added over ranks, and submission
rows are streamed to rank 0 in bounded chunks, which writes the ONE CSV
(no per-rank partial files). Every rank must call them; an error on one
rank raises on all (:func:`mmseg_ext.utils.dist.sync_errors`).

Softmax members contribute ``softmax(seg_logits)``; binary
(``out_channels == 1``) members ``seg_logits`` as MMSeg's
``postprocess_result`` left them (already sigmoid probabilities); multi-label
members (:class:`MultiLabelEncoderDecoder`) their ``seg_logits``
(probabilities).
"""
import copy
import csv
import io
import json
import os
import os.path as osp
import shutil
import tempfile
from collections import Counter
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmseg_ext.utils.dist import (advance_progress, chunk_bounds, dist_info,
                                  gather_chunks, run_on_main, shard,
                                  sum_over_ranks, sync_errors)
from mmseg_ext.utils.ensemble import (STRATEGIES, ThresholdSearch,
                                      classwise_select, dequantize_probs,
                                      quantize_probs, soft_vote)
from mmseg_ext.utils.io import atomic_path, dump_json_atomic, imwrite_atomic
from mmseg_ext.utils.multilabel import (num_packed_channels, pack_multilabel,
                                        read_packed_label, unpack_multilabel,
                                        write_packed_label)
from mmseg_ext.utils.postprocess import (DICE_EPS, apply_postprocess,
                                         choose_postprocess,
                                         postprocess_dice_sums)
from mmseg_ext.utils.rle import rle_encode

__all__ = [
    'DECISIONS', 'PROB_SUFFIX', 'save_probs', 'load_probs', 'load_weights',
    'load_scores', 'load_thresholds', 'vote_fraction', 'ProbDirMember',
    'ModelMember', 'Ensemble', 'EnsembleItem', 'SubmissionSpool',
    'ensemble_val', 'ensemble_test', 'label_to_targets',
    'plot_threshold_curves'
]

PROB_SUFFIX = '.npy'
DECISIONS = ('threshold', 'argmax')
SUBMISSIONS = ('hand_bone', 'building')
ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadMultiLabelAnnotations')
# Bytes of float32 member probabilities merged at once (per class chunk).
MERGE_CHUNK_BYTES = 256 << 20


# --------------------------------------------------------------- file formats
def save_probs(path: str, probs: np.ndarray) -> None:
    """Write uint8 ``(C, H, W)`` probabilities as ``.npy``, atomically.

    Args:
        path (str): Output ``{image_stem}.npy``.
        probs (np.ndarray): ``(C, H, W)`` uint8 (from :func:`quantize_probs`)
            or float in ``[0, 1]`` (quantised here).
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError('probabilities to save should be (C, H, W), but got '
                         f'{probs.shape} (for {path!r})')
    if probs.dtype != np.uint8:
        probs = quantize_probs(probs)
    with atomic_path(path) as tmp:
        np.save(tmp, probs)


def load_probs(path: str) -> np.ndarray:
    """Read a ``(C, H, W)`` uint8 probability file of :func:`save_probs`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a uint8 ``(C, H, W)`` ``.npy`` array.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'probability file {path!r} does not exist')
    try:
        probs = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f'{path!r} is not a .npy array: {err}') from err
    if probs.dtype != np.uint8 or probs.ndim != 3:
        raise ValueError(f'{path!r} should hold (C, H, W) uint8 probabilities '
                         '(quantize_probs, round(255 p)), but got '
                         f'{probs.shape} {probs.dtype}')
    return probs


def _read_table(path: str) -> np.ndarray:
    """A numeric table from JSON (list, list of lists, or ``{"weights"}``)
    or CSV (an optional header row)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'weights file {path!r} does not exist')
    if path.lower().endswith('.json'):
        with open(path, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}: not valid JSON: {err}') from err
        if isinstance(data, dict):
            if 'weights' not in data:
                raise ValueError(f'{path}: a JSON object should have a '
                                 f'"weights" field, but has {sorted(data)}')
            data = data['weights']
        try:
            return np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f'{path}: "weights" should be E numbers or E '
                             f'lists of C numbers: {err}') from err
    rows = []
    with open(path, encoding='utf-8', newline='') as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                rows.append([float(c) for c in row])
            except ValueError:
                if line == 1 and not rows:  # header row
                    continue
                raise ValueError(f'{path}:{line}: every field should be a '
                                 f'number, but got {row!r}') from None
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f'{path}: every row should have the same number of '
                         f'weights (C), but got {[len(r) for r in rows]}')
    return np.asarray(rows, dtype=np.float64)


def load_weights(spec: Union[str, Sequence], num_members: int) -> np.ndarray:
    """Member weights ``(E,)`` or ``(E, C)`` for the soft vote.

    Args:
        spec (str | Sequence): ``E`` numbers, or one path to a JSON (a list
            of ``E`` numbers, ``E`` lists of ``C`` numbers, or
            ``{"weights": ...}``) or CSV (``E`` rows of ``C`` numbers, an
            optional header row) table.
        num_members (int): ``E``.

    Returns:
        np.ndarray: ``(E,)`` or ``(E, C)`` float64 weights.

    Raises:
        ValueError: if the count does not match ``E`` or a value is bad.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    if len(items) == 1 and isinstance(items[0], str) and (
            osp.splitext(items[0])[1].lower() in ('.json', '.csv')
            or osp.isfile(items[0])):
        weights = _read_table(items[0])
        source = items[0]
    else:
        try:
            weights = np.asarray([float(v) for v in items], np.float64)
        except (TypeError, ValueError):
            raise ValueError('`--weights` should be E numbers or one JSON/CSV '
                             f'path, but got {items!r}') from None
        source = '`--weights`'
    if weights.ndim not in (1, 2) or weights.shape[0] != num_members:
        raise ValueError(
            f'{source} should give one weight per member, (E,) = '
            f'({num_members},) or (E, C) = ({num_members}, C), but got '
            f'shape {weights.shape}; there are {num_members} members')
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f'{source} should hold finite non-negative weights, '
                         f'but got {weights.tolist()}')
    return weights


def load_scores(paths: Sequence[str],
                key: str = 'dice') -> Tuple[np.ndarray, Optional[List[str]]]:
    """``(E, C)`` per-class validation scores from per-class JSONs.

    Each file is one member's ``per_class_json`` of
    :class:`MultiLabelDiceMetric` or :class:`PerClassIoUMetric`
    (``{"classes", "dice", "iou", ...}``); ``null`` (a class never seen)
    ranks last.

    Returns:
        tuple[np.ndarray, list[str] | None]: Scores and the class names.

    Raises:
        ValueError: on a missing key, different class lists or lengths.
    """
    rows, classes = [], None
    for path in paths:
        if not osp.isfile(path):
            raise FileNotFoundError(f'scores file {path!r} does not exist')
        with open(path, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}: not valid JSON: {err}') from err
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise ValueError(f'{path}: should be a per-class JSON with a '
                             f'"{key}" list (MultiLabelDiceMetric/'
                             'PerClassIoUMetric per_class_json), but it has '
                             f'none')
        values = [-np.inf if v is None else float(v) for v in data[key]]
        names = data.get('classes')
        if rows and len(values) != len(rows[0]):
            raise ValueError(f'{path}: has {len(values)} class scores, but '
                             f'{paths[0]} has {len(rows[0])}')
        if names is not None:
            if classes is not None and list(names) != classes:
                raise ValueError(f'{path}: its classes {names} differ from '
                                 f'those of {paths[0]}: {classes}')
            classes = list(names)
        rows.append(values)
    return np.asarray(rows, dtype=np.float64), classes


def load_thresholds(spec: Union[str, float], num_classes: int) -> dict:
    """Thresholds for the test split: a number, or ``thresholds.json``.

    Args:
        spec (str | float): A number in ``[0, 1)`` (every class), or the
            path of a ``thresholds.json`` from :func:`ensemble_val`.
        num_classes (int): ``C``.

    Returns:
        dict: ``thresholds`` (``(C,)`` float32), ``postprocess`` (plan or
        ``{}``), ``classes`` (or None), ``strategy`` (or None).
    """
    try:
        value = float(spec)
    except (TypeError, ValueError):
        value = None
    if value is not None:
        if not 0 <= value < 1:
            raise ValueError(f'`--thresholds` should be in [0, 1), but got '
                             f'{value}')
        return dict(
            thresholds=np.full(num_classes, value, np.float32),
            postprocess={},
            classes=None,
            strategy=None)
    path = str(spec)
    if not osp.isfile(path):
        raise FileNotFoundError(f'`--thresholds` should be a number or a '
                                f'thresholds.json, but {path!r} does not '
                                'exist')
    with open(path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}: not valid JSON: {err}') from err
    thresholds = data.get('thresholds') if isinstance(data, dict) else None
    if not isinstance(thresholds, list) or len(thresholds) != num_classes:
        got = len(thresholds) if isinstance(thresholds, list) else thresholds
        raise ValueError(f'{path}: "thresholds" should be a list of C='
                         f'{num_classes} numbers, but got {got!r}')
    return dict(
        thresholds=np.asarray(thresholds, np.float32),
        postprocess=dict(data.get('postprocess') or {}),
        classes=data.get('classes'),
        strategy=data.get('strategy'))


# ---------------------------------------------------------------- merging
def vote_fraction(members: Sequence[np.ndarray],
                  threshold: Union[float, Sequence[float]] = 0.5
                  ) -> np.ndarray:
    """Fraction of the ``E`` members voting for each class and pixel.

    A member votes where its probability is ``> threshold`` (as
    :func:`hard_vote`) or where its bool mask is True. ``fraction >
    (k - 0.5) / E`` is exactly ``hard_vote(members, k, threshold)``.

    Args:
        members (Sequence[np.ndarray]): ``E`` arrays ``(C, H, W)``: uint8
            or float probabilities, or bool masks.
        threshold (float | Sequence[float]): Global or ``(C,)``.

    Returns:
        np.ndarray: ``(C, H, W)`` float32 in ``{0, 1/E, ..., 1}``.
    """
    if len(members) == 0:
        raise ValueError('an ensemble needs at least one member, but got 0')
    thr = np.asarray(threshold, np.float32).reshape(-1, 1, 1)
    votes = None
    for m in members:
        m = np.asarray(m)
        positive = m if m.dtype == np.bool_ else dequantize_probs(m) > thr
        votes = positive.astype(np.uint16) if votes is None else \
            votes + positive
    return votes.astype(np.float32) / np.float32(len(members))


def _class_chunk(num_members: int, height: int, width: int) -> int:
    per_class = max(1, num_members * height * width * 4)
    return max(1, MERGE_CHUNK_BYTES // per_class)


# ---------------------------------------------------------------- members
def _realpath(path: str) -> str:
    return osp.normcase(osp.realpath(path))


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


class ProbDirMember:
    """A folder of saved probabilities, ``{image_stem}.npy`` uint8
    ``(C, H, W)`` each (see :func:`save_probs`).

    Args:
        folder (str): The folder (not searched recursively).

    Raises:
        FileNotFoundError: if the folder does not exist or holds no
            ``.npy`` file.
    """

    def __init__(self, folder: str) -> None:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'probability folder {folder!r} does not '
                                    'exist')
        self.folder = folder
        self.name = folder
        self.mode = None  # unknown: saved probabilities
        self.paths = {
            name[:-len(PROB_SUFFIX)]: osp.join(folder, name)
            for name in sorted(os.listdir(folder))
            if name.endswith(PROB_SUFFIX) and not name.startswith('.')
        }
        if not self.paths:
            raise FileNotFoundError(f'probability folder {folder!r} has no '
                                    f'*{PROB_SUFFIX} file')

    @property
    def stems(self) -> List[str]:
        """Sorted image stems."""
        return list(self.paths)

    def load(self, stem: str) -> np.ndarray:
        """``(C, H, W)`` uint8 probabilities of one image."""
        path = self.paths.get(stem)
        if path is None:
            raise FileNotFoundError(
                f'probability folder {self.folder!r} has no {stem}'
                f'{PROB_SUFFIX}; every member needs every image')
        return load_probs(path)


class ModelMember:
    """A segmentor and the dataset of its config, run one image at a time.

    The dataset is the config's ``val_dataloader.dataset`` (``split='val'``)
    or ``test_dataloader.dataset`` (``split='test'``; annotation loading is
    dropped from its pipeline, so unlabelled test sets work). The model is
    built with ``pretrained=None``/``train_cfg=None``, loads ``checkpoint``
    and runs ``test_step`` on one sample at a time (the config's
    ``test_cfg``: whole/slide, flip...).

    Args:
        config (str): Config path.
        checkpoint (str): Checkpoint path.
        split (str): ``'val'`` or ``'test'``. Defaults to ``'test'``.
        cfg_options (dict, optional): Merged into the config (e.g. the data
            root). Defaults to None.
        device (str): Defaults to ``'cpu'``.

    Raises:
        ValueError: if the test pipeline is a ``TestTimeAug`` one.
    """

    def __init__(self,
                 config: str,
                 checkpoint: str,
                 split: str = 'test',
                 cfg_options: Optional[dict] = None,
                 device: str = 'cpu') -> None:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmengine.runner import load_checkpoint
        from mmseg.registry import DATASETS, MODELS

        from mmseg_ext.models.segmentors.tta import ProbSegTTAModel

        if split not in ('val', 'test'):
            raise ValueError(f"`split` should be 'val' or 'test', but got "
                             f'{split!r}')
        if not osp.isfile(config):
            raise FileNotFoundError(f'config {config!r} does not exist')
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint!r} does not '
                                    'exist')
        self.config, self.checkpoint = config, checkpoint
        self.name = f'{config} ({osp.basename(checkpoint)})'
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmseg'))

        loader = f'{split}_dataloader'
        if loader not in cfg or 'dataset' not in cfg[loader]:
            raise ValueError(f'{config}: has no `{loader}.dataset` to '
                             f'run the {split} split on')
        dataset_cfg = copy.deepcopy(cfg[loader]['dataset'])
        pipeline = dataset_cfg.get('pipeline', [])
        if any(t.get('type') == 'TestTimeAug' for t in pipeline):
            raise ValueError(
                f'{config}: its {loader} pipeline uses TestTimeAug, which '
                'the ensemble does not run; use the segmentor\'s '
                '`test_cfg.flip` (MultiLabelEncoderDecoder) or a plain test '
                'pipeline')
        if split == 'test':
            dataset_cfg['pipeline'] = [
                t for t in pipeline if t.get('type') not in ANNOTATION_LOADERS
            ]
        self.dataset = DATASETS.build(dataset_cfg)

        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.pretrained = None
        model_cfg.train_cfg = None
        if isinstance(model_cfg.get('backbone'), dict):
            model_cfg.backbone.init_cfg = None
        self.model = MODELS.build(model_cfg)
        load_checkpoint(self.model, checkpoint, map_location='cpu',
                        logger='silent')
        self.model.to(device)
        self.model.eval()
        self.mode = ProbSegTTAModel.detect_mode(self.model)
        self.classes = list(self.dataset.metainfo.get('classes') or [])

    def __len__(self) -> int:
        return len(self.dataset)

    def img_path(self, index: int) -> str:
        """Image path of sample ``index`` (no pipeline run)."""
        return self.dataset.get_data_info(index)['img_path']

    def predict(self, index: int) -> Tuple[np.ndarray, object]:
        """Run sample ``index``.

        Returns:
            tuple[np.ndarray, SegDataSample]: ``(C, H, W)`` uint8
            probabilities at the original size and the output sample.
        """
        import torch
        from mmengine.dataset import pseudo_collate

        data = pseudo_collate([self.dataset[index]])
        with torch.no_grad():
            sample = self.model.test_step(data)[0]
        logits = sample.seg_logits.data.float()
        if self.mode == 'softmax':
            logits = logits.softmax(dim=0)
        probs = quantize_probs(logits.cpu().numpy())
        del sample.seg_logits, logits  # keep only the uint8 copy
        return probs, sample


# ------------------------------------------------------------- ground truth
def label_to_targets(label: np.ndarray,
                     num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """A class-index map ``(H, W)`` as ``(C, H, W)`` targets.

    ``C == 1`` (binary): class 1 is the foreground. Pixels equal to
    ``ignore_index`` are ``ignore_index`` in every class.
    """
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[0] == 1:
        label = label[0]
    if label.ndim != 2:
        raise ValueError('a label map should be (H, W), but got '
                         f'{label.shape}')
    if num_classes == 1:
        targets = (label == 1)[None].astype(np.uint8)
    else:
        targets = (label[None] == np.arange(num_classes).reshape(
            -1, 1, 1)).astype(np.uint8)
    ignored = label == ignore_index
    if ignored.any():
        targets[:, ignored] = ignore_index
    return targets


def _sample_targets(sample, num_classes: int, mode: str) -> np.ndarray:
    """``(C, H, W)`` uint8 targets from a sample's ``gt_sem_seg``."""
    import torch

    from mmseg_ext.utils.multilabel import unpack_multilabel_torch
    if 'gt_sem_seg' not in sample:
        raise ValueError(
            f'{sample.metainfo.get("img_path")} has no ground truth; the '
            "validation split needs its member config's val pipeline to "
            'load annotations')
    gt = sample.gt_sem_seg.data
    if gt.dtype == torch.int16:  # packed multi-label (K, H, W)
        k = num_packed_channels(num_classes)
        return unpack_multilabel_torch(gt[:k], num_classes).cpu().numpy()
    gt = gt.cpu().numpy()
    if mode == 'multilabel':  # unpacked by the data preprocessor
        if gt.ndim != 3 or gt.shape[0] != num_classes:
            raise ValueError(
                f'{sample.metainfo.get("img_path")}: multi-label ground '
                f'truth should be (C={num_classes}, H, W), but got '
                f'{gt.shape}')
        return gt.astype(np.uint8)
    return label_to_targets(gt, num_classes)


# ---------------------------------------------------------------- ensemble
class EnsembleItem:
    """One image of an :class:`Ensemble` pass.

    Attributes:
        stem (str): Image file stem (key of probability files and masks).
        name (str): Image file name (hand-bone ``image_name``).
        img_id (str): Building ``img_id`` (metainfo ``img_id`` if the
            member's pipeline keeps it, else the stem).
        probs (list[np.ndarray]): ``E`` uint8 ``(C, H, W)`` maps.
        targets (np.ndarray | None): ``(C, H, W)`` uint8 targets in
            ``{0, 1, 255}`` when asked for.
        position (int): Index of the image in the ensemble's full list
            (the order of a building submission across ranks).
    """

    def __init__(self, stem, name, img_id, probs, targets=None, position=0):
        self.stem, self.name, self.img_id = stem, name, img_id
        self.probs, self.targets = probs, targets
        self.position = position


class Ensemble:
    """Members, a merge strategy and a decision, streamed image by image.

    Members are given in order (model members first, then probability
    folders, as ``tools/ensemble.py`` builds them); ``weights`` and
    ``scores`` follow that order. Model members iterate their datasets in
    lockstep: the datasets must list the same images (same real paths) in
    the same order. Probability folders are looked up by image stem; with
    only folders, all must hold the same stems (sorted order).

    Args:
        members (list[ModelMember | ProbDirMember]): ``E >= 1`` members.
        strategy (str): ``'soft'``, ``'hard'`` or ``'classwise'``.
            Defaults to ``'soft'``.
        weights (np.ndarray, optional): ``(E,)``/``(E, C)`` soft weights.
        scores (np.ndarray, optional): ``(E, C)`` classwise scores
            (required for ``'classwise'``).
        k (int, optional): Votes needed for ``'hard'`` (None: majority).
        member_threshold (float): Binarisation of each member for
            ``'hard'`` with ``'threshold'`` decision. Defaults to 0.5.
        decision (str, optional): ``'threshold'`` or ``'argmax'``; None:
            ``'argmax'`` if every model member is a softmax segmentor,
            else ``'threshold'``.
        gt_dir (str, optional): Ground truth for probability-only members:
            ``{gt_dir}/{stem}{gt_suffix}``. Defaults to None.
        gt_format (str): ``'packed'`` (packed multi-label PNG) or
            ``'label'`` (class-index PNG, 255 ignored). Defaults to
            ``'packed'``.
        gt_suffix (str): Defaults to ``'.png'``.
        classes (Sequence[str], optional): Class names (default: the first
            model member's dataset classes, else indices).
        save_probs_dir (str, optional): Save each model member's uint8
            probabilities under ``{dir}/{i}_{config stem}/{stem}.npy``.
        img_suffix (str): Suffix of image names for probability-only
            members (hand-bone ``image_name``). Defaults to ``'.png'``.

    Raises:
        ValueError: on option mismatches (weights/scores count, image lists
            that disagree, ...), with the fix.
    """

    def __init__(self,
                 members: Sequence,
                 strategy: str = 'soft',
                 weights: Optional[np.ndarray] = None,
                 scores: Optional[np.ndarray] = None,
                 k: Optional[int] = None,
                 member_threshold: float = 0.5,
                 decision: Optional[str] = None,
                 gt_dir: Optional[str] = None,
                 gt_format: str = 'packed',
                 gt_suffix: str = '.png',
                 classes: Optional[Sequence[str]] = None,
                 save_probs_dir: Optional[str] = None,
                 img_suffix: str = '.png') -> None:
        self.members = list(members)
        e = len(self.members)
        if e == 0:
            raise ValueError('an ensemble needs at least one member: give '
                             '--member CONFIG CHECKPOINT and/or --prob-dirs '
                             'DIR ...')
        if strategy not in STRATEGIES:
            raise ValueError(f'`strategy` should be one of {STRATEGIES}, but '
                             f'got {strategy!r}')
        self.strategy = strategy
        if weights is not None:
            if strategy != 'soft':
                raise ValueError('`weights` apply to the soft strategy only, '
                                 f'but the strategy is {strategy!r}')
            weights = np.asarray(weights, np.float64)
            if weights.ndim not in (1, 2) or weights.shape[0] != e:
                raise ValueError(
                    f'`weights` should be (E,) or (E, C) with E={e} '
                    f'members, but got shape {weights.shape}')
        self.weights = weights
        if strategy == 'classwise':
            if scores is None:
                raise ValueError('the classwise strategy needs `scores` '
                                 '(--scores, one per-class JSON per member)')
            scores = np.asarray(scores, np.float64)
            if scores.ndim != 2 or scores.shape[0] != e:
                raise ValueError(
                    f'`scores` should be (E, C) with E={e} members (one '
                    f'per-class JSON each), but got shape {scores.shape}')
        elif scores is not None:
            raise ValueError('`scores` apply to the classwise strategy only, '
                             f'but the strategy is {strategy!r}')
        self.scores = scores
        if k is not None:
            if strategy != 'hard':
                raise ValueError('`k` applies to the hard strategy only, but '
                                 f'the strategy is {strategy!r}')
            if isinstance(k, bool) or not isinstance(
                    k, (int, np.integer)) or not 1 <= k <= e:
                raise ValueError(f'`k` should be an int in [1, E={e}], but '
                                 f'got {k!r}')
        self.k = k
        self.member_threshold = float(member_threshold)

        modes = {m.mode for m in self.members if m.mode is not None}
        if decision is None:
            decision = 'argmax' if modes == {'softmax'} else 'threshold'
            if 'softmax' in modes and len(modes) > 1:
                raise ValueError(
                    'model members mix softmax and sigmoid (binary/'
                    f'multi-label) segmentors {sorted(modes)}; choose the '
                    'decision explicitly (--decision threshold|argmax)')
        if decision not in DECISIONS:
            raise ValueError(f'`decision` should be one of {DECISIONS}, but '
                             f'got {decision!r}')
        self.decision = decision
        if gt_format not in ('packed', 'label'):
            raise ValueError("`gt_format` should be 'packed' or 'label', but "
                             f'got {gt_format!r}')
        if gt_dir is not None and not osp.isdir(gt_dir):
            raise FileNotFoundError(f'ground-truth folder {gt_dir!r} does not '
                                    'exist')
        self.gt_dir, self.gt_format, self.gt_suffix = (gt_dir, gt_format,
                                                       gt_suffix)
        self.classes = list(classes) if classes else None
        self.save_probs_dir = save_probs_dir
        self.img_suffix = img_suffix
        self.model_members = [
            m for m in self.members if isinstance(m, ModelMember)
        ]
        self.index = self._check_image_lists()
        self.num_classes = None
        self._save_dirs = {}
        if save_probs_dir is not None:
            for i, m in enumerate(self.members):
                if isinstance(m, ModelMember):
                    self._save_dirs[i] = osp.join(
                        save_probs_dir, f'{i}_{_stem(m.config)}')

    # ---------------------------------------------------------- images
    def _check_image_lists(self) -> List[Tuple[str, Optional[int]]]:
        """``(stem, dataset index)`` of every image, checked across members.
        """
        models = self.model_members
        folders = [m for m in self.members if isinstance(m, ProbDirMember)]
        if models:
            ref = models[0]
            paths = [ref.img_path(i) for i in range(len(ref))]
            for other in models[1:]:
                if len(other) != len(ref):
                    raise ValueError(
                        f'members list different images: {ref.name} has '
                        f'{len(ref)} and {other.name} has {len(other)}; all '
                        'member configs should use the same dataset '
                        '(--cfg-options can set the data root)')
                for i, path in enumerate(paths):
                    if _realpath(other.img_path(i)) != _realpath(path):
                        raise ValueError(
                            f'members list different images at index {i}: '
                            f'{ref.name} has {path!r} and {other.name} has '
                            f'{other.img_path(i)!r}; the member datasets '
                            'should list the same images in the same order')
            stems = [_stem(p) for p in paths]
            index = list(zip(stems, range(len(paths))))
        else:
            stems = folders[0].stems
            index = [(s, None) for s in stems]
        dup = sorted(s for s, n in Counter(stems).items() if n > 1)
        if dup and (folders or self.save_probs_dir):
            raise ValueError(f'image stems {dup[:5]} repeat in the dataset; '
                             'probability files are keyed by stem')
        wanted = set(stems)
        for folder in folders:
            have = set(folder.stems)
            missing = sorted(wanted - have)
            extra = sorted(have - wanted) if not models else []
            if missing or extra:
                ref_name = models[0].name if models else folders[0].name
                raise ValueError(
                    f'members list different images: {folder.name} lacks '
                    f'{len(missing)} of {ref_name}\'s images {missing[:5]} '
                    f'and has {len(extra)} others {extra[:5]}; every member '
                    'needs one probability file per image')
        return index

    def __len__(self) -> int:
        return len(self.index)

    def _targets_from_dir(self, stem: str, num_classes: int) -> np.ndarray:
        import cv2
        path = osp.join(self.gt_dir, stem + self.gt_suffix)
        if self.gt_format == 'packed':
            return unpack_multilabel(read_packed_label(path, num_classes),
                                     num_classes)
        label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if label is None:
            raise FileNotFoundError(f'ground truth {path!r} does not exist '
                                    'or cannot be read')
        return label_to_targets(label, num_classes)

    def items(
            self,
            with_targets: bool = False,
            positions: Optional[Sequence[int]] = None
    ) -> Iterator[EnsembleItem]:
        """Yield one :class:`EnsembleItem` per image, in order.

        Args:
            with_targets (bool): Also load the ground truth (from the first
                model member's sample, else ``gt_dir``).
            positions (Sequence[int], optional): Only these images (indices
                into the full list, e.g. a rank's shard). Defaults to all.
        """
        if with_targets and not self.model_members and self.gt_dir is None:
            raise ValueError('the validation split with only probability '
                             'folders needs the ground truth: --gt-dir DIR '
                             '(and --gt-format packed|label)')
        if positions is None:
            positions = range(len(self.index))
        for position in positions:
            stem, index = self.index[position]
            probs, first_sample, name, img_id = [], None, None, stem
            for i, member in enumerate(self.members):
                if isinstance(member, ModelMember):
                    p, sample = member.predict(index)
                    if first_sample is None:
                        first_sample = sample
                    else:
                        del sample
                    if i in self._save_dirs:
                        save_probs(
                            osp.join(self._save_dirs[i], stem + PROB_SUFFIX),
                            p)
                else:
                    p = member.load(stem)
                if probs and p.shape != probs[0].shape:
                    raise ValueError(
                        f'{stem}: every member should give (C, H, W) '
                        f'probabilities of one shape, but '
                        f'{self.members[0].name} gave {probs[0].shape} and '
                        f'{member.name} gave {p.shape}')
                probs.append(p)
            num_classes = probs[0].shape[0]
            self._set_num_classes(num_classes)
            if first_sample is not None:
                meta = first_sample.metainfo
                name = osp.basename(meta.get('img_path', stem))
                img_id = str(meta.get('img_id', stem))
            else:
                name = stem + self.img_suffix
            targets = None
            if with_targets:
                targets = _sample_targets(
                    first_sample, num_classes,
                    self.model_members[0].mode) \
                    if first_sample is not None else \
                    self._targets_from_dir(stem, num_classes)
                if targets.shape != probs[0].shape:
                    raise ValueError(
                        f'{stem}: the ground truth is {targets.shape} but '
                        f'the probabilities are {probs[0].shape}; they '
                        'should both be (C, H, W) at the original size')
            del first_sample
            yield EnsembleItem(stem, name, img_id, probs, targets, position)

    def _set_num_classes(self, num_classes: int) -> None:
        if self.num_classes is not None:
            return
        self.num_classes = num_classes
        for what, table in (('weights', self.weights), ('scores',
                                                        self.scores)):
            if table is not None and table.ndim == 2 and \
                    table.shape[1] != num_classes:
                raise ValueError(
                    f'`{what}` is an (E, C) = {table.shape} table, but the '
                    f'members predict C={num_classes} classes')
        names = self.classes
        if not names and self.model_members:
            names = self.model_members[0].classes
            if len(names) == 2 and num_classes == 1:
                names = names[1:]  # binary: background, foreground
        if not names or len(names) != num_classes:
            if self.classes:
                raise ValueError(f'`classes` has {len(self.classes)} names, '
                                 f'but the members predict C={num_classes}')
            names = [str(c) for c in range(num_classes)]
        self.classes = list(names)

    @property
    def member_names(self) -> List[str]:
        return [m.name for m in self.members]

    # ----------------------------------------------------------- merging
    def _merged_chunks(self, probs: Sequence[np.ndarray]
                       ) -> Iterator[Tuple[slice, np.ndarray]]:
        """``(class slice, merged float32 chunk)`` over chunks of classes.

        The library functions on a slice of classes give the same values as
        on all classes (they work per class), so merging chunk by chunk
        bounds the float32 temporaries (``E x chunk x H x W``).
        """
        e = len(probs)
        c, h, w = probs[0].shape
        chunk = _class_chunk(e, h, w)
        labels = None
        if self.strategy == 'hard' and self.decision == 'argmax':
            labels = [p.argmax(0) for p in probs]
        for c0 in range(0, c, chunk):
            sl = slice(c0, min(c, c0 + chunk))
            if self.strategy == 'soft':
                w_ = self.weights
                if w_ is not None and w_.ndim == 2:
                    w_ = w_[:, sl]
                yield sl, soft_vote([p[sl] for p in probs], w_)
            elif self.strategy == 'classwise':
                yield sl, classwise_select([p[sl] for p in probs],
                                           self.scores[:, sl])
            elif labels is not None:
                ids = np.arange(sl.start, sl.stop).reshape(-1, 1, 1)
                yield sl, vote_fraction([lab[None] == ids for lab in labels])
            else:
                yield sl, vote_fraction([p[sl] for p in probs],
                                        self.member_threshold)

    def merge(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        """Merge one image's ``E`` uint8 maps into ``(C, H, W)`` float32.

        ``'soft'``/``'classwise'``: probabilities; ``'hard'``: the vote
        fraction (of the members' argmax with the ``'argmax'`` decision).
        """
        out = np.empty(probs[0].shape, np.float32)
        for sl, part in self._merged_chunks(probs):
            out[sl] = part
        return out

    def predict(self, probs: Sequence[np.ndarray],
                thresholds: Optional[np.ndarray] = None) -> np.ndarray:
        """:meth:`decide` of :meth:`merge`, without the full float32 map
        for the ``'threshold'`` decision (each chunk is thresholded as it
        is merged)."""
        if self.decision == 'argmax':
            return self.decide(self.merge(probs))
        thr = self.default_thresholds() if thresholds is None else \
            np.asarray(thresholds, np.float32)
        if thr.shape != (probs[0].shape[0], ):
            raise ValueError(f'`thresholds` should be (C,) = '
                             f'({probs[0].shape[0]},), but got {thr.shape}')
        out = np.empty(probs[0].shape, np.uint8)
        for sl, part in self._merged_chunks(probs):
            np.greater(part, thr[sl].reshape(-1, 1, 1), out=out[sl],
                       casting='unsafe')
        return out

    def default_thresholds(self) -> np.ndarray:
        """``(C,)`` thresholds without a search: ``(k - 0.5) / E`` for
        ``'hard'`` (majority without ``k``), else 0.5."""
        c = self.num_classes
        if self.strategy == 'hard':
            e = len(self.members)
            k = e // 2 + 1 if self.k is None else self.k
            return np.full(c, (k - 0.5) / e, np.float32)
        return np.full(c, 0.5, np.float32)

    def decide(self, merged: np.ndarray,
               thresholds: Optional[np.ndarray] = None) -> np.ndarray:
        """``(C, H, W)`` uint8 masks (``merged > thresholds``) or, with the
        ``'argmax'`` decision, the ``(H, W)`` uint8 label map."""
        if self.decision == 'argmax':
            if merged.shape[0] > 256:
                raise ValueError('the argmax decision writes uint8 label '
                                 'maps (C <= 256), but C='
                                 f'{merged.shape[0]}')
            return merged.argmax(0).astype(np.uint8)
        thr = self.default_thresholds() if thresholds is None else \
            np.asarray(thresholds, np.float32)
        return (merged > thr.reshape(-1, 1, 1)).astype(np.uint8)


# --------------------------------------------------------------- val / test
def _f32_list(values) -> List[float]:
    """float32 values as the shortest decimals that read back as the same
    float32 (``0.65``, not ``0.6499999761581421``)."""
    return [float(str(np.float32(v))) for v in values]


def _progress(total: int):
    from mmengine.utils import ProgressBar
    return ProgressBar(total)


def _onehot(label: np.ndarray, num_classes: int) -> np.ndarray:
    if num_classes == 1:
        return (label == 1)[None].astype(np.uint8)
    return (label[None] == np.arange(num_classes).reshape(-1, 1, 1)).astype(
        np.uint8)


def _image_counts(pred: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(3, C)`` ``|X & Y|``, ``|X|``, ``|Y|`` (ignored pixels excluded)."""
    valid = targets != 255
    x = (pred != 0) & valid
    y = (targets == 1) & valid
    c = len(targets)
    return np.stack([(x & y).reshape(c, -1).sum(1),
                     x.reshape(c, -1).sum(1),
                     y.reshape(c, -1).sum(1)]).astype(np.int64)


def plot_threshold_curves(candidates: Sequence[float],
                          mean_dice: np.ndarray,
                          classes: Sequence[str],
                          best: Sequence[float],
                          path: str,
                          xlabel: str = 'threshold',
                          title: Optional[str] = None) -> None:
    """Per-class mean Dice against the threshold, best marked; PNG (Agg).

    Args:
        candidates (Sequence[float]): ``(T,)`` x values.
        mean_dice (np.ndarray): ``(T, C)`` mean Dice.
        classes (Sequence[str]): ``C`` names.
        best (Sequence[float]): ``(C,)`` chosen x per class.
        path (str): Output PNG (written atomically).
        xlabel (str): Defaults to ``'threshold'``.
        title (str, optional): Defaults to None.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(candidates, np.float64)
    mean_dice = np.asarray(mean_dice, np.float64)
    fig = Figure(figsize=(10, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = [f'C{i % 10}' for i in range(len(classes))]
    styles = ('-', '--', ':', '-.')
    for c, name in enumerate(classes):
        ax.plot(x, mean_dice[:, c], color=colors[c], linewidth=0.9,
                linestyle=styles[(c // 10) % len(styles)], alpha=0.8,
                label=str(name))
        j = int(np.argmin(np.abs(x - float(best[c]))))
        ax.plot([x[j]], [mean_dice[j, c]], 'o', color=colors[c],
                markersize=3)
    ax.plot(x, mean_dice.mean(1), color='black', linewidth=2.5,
            label='mean (one threshold)')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('mean per-image Dice')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, ncol=1 + len(classes) // 16, loc='center left',
              bbox_to_anchor=(1.01, 0.5))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def ensemble_val(ensemble: Ensemble,
                 out_dir: str,
                 candidates: Optional[Sequence[float]] = None,
                 postprocess: bool = False,
                 pp_candidates: Sequence[Sequence] = (('lcc', ), ('min_area',
                                                                  64)),
                 min_gain: float = 0.0,
                 progress: bool = True) -> dict:
    """Search per-class thresholds (and post-processing) on validation data.

    ``'threshold'`` decision: one streaming pass feeds the merged map of
    every image and its targets to :class:`ThresholdSearch` (candidates:
    0.05 .. 0.95, or ``(k - 0.5) / E`` for ``k = 1..E`` with ``'hard'``, i.e.
    a per-class ``k``). With ``postprocess`` the merged maps are cached as
    uint16 (``round(65535 p)``, exact for thresholds that are not within
    ``1e-5`` of a value) with the packed targets in a temporary folder under
    ``out_dir`` (disk, not memory), and a second pass measures the
    post-processing candidates on the masks at the chosen thresholds
    (:func:`postprocess_dice_sums`, :func:`choose_postprocess`).
    Writes ``thresholds.json`` and ``thresholds.png`` (Dice vs threshold).

    ``'argmax'`` decision: no threshold; writes ``val_scores.json`` (the
    per-class JSON layout: mean per-image Dice and IoU, eps 1e-4).

    With a process group every rank must call it: each takes its shard of
    the images (and its own cache folder); the Dice sums are added over
    ranks, so every rank chooses the same thresholds and plan, and rank 0
    writes the files.

    Returns:
        dict: The JSON content written (on every rank).
    """
    from mmseg_ext.evaluation.metrics.multilabel_dice_metric import \
        dice_iou_scores

    rank, world_size = dist_info()
    os.makedirs(out_dir, exist_ok=True)
    positions = shard(len(ensemble))
    e = len(ensemble.members)
    bar = _progress(len(ensemble)) if progress and rank == 0 else None
    if ensemble.decision == 'argmax':
        sums, num, error = None, 0, None
        try:
            for item in ensemble.items(True, positions):
                label = ensemble.decide(ensemble.merge(item.probs))
                counts = _image_counts(
                    _onehot(label, len(item.targets)), item.targets)
                dice, iou = dice_iou_scores(counts[None], DICE_EPS)
                both = np.stack([dice[0], iou[0]])
                sums = both if sums is None else sums + both
                num += 1
                advance_progress(bar, item.position, len(ensemble))
        except Exception as err:  # noqa: B902 (raised on every rank)
            error = err
        sync_errors(error)
        sums, num = sum_over_ranks(sums), sum_over_ranks(num)
        if not num:
            raise ValueError('the validation split has no images')
        dice, iou = sums / num

        def write_scores():
            content = dict(
                classes=ensemble.classes,
                dice=dice.tolist(),
                iou=iou.tolist(),
                mDice=float(dice.mean()),
                mIoU=float(iou.mean()),
                num_images=num,
                eps=DICE_EPS,
                strategy=ensemble.strategy,
                decision='argmax',
                members=ensemble.member_names)
            dump_json_atomic(content, osp.join(out_dir, 'val_scores.json'))
            return content

        return run_on_main(write_scores)

    hard = ensemble.strategy == 'hard'
    if candidates is None:
        candidates = [(k - 0.5) / e for k in range(1, e + 1)] if hard else \
            np.round(np.arange(0.05, 0.96, 0.05), 2).tolist()
    search = ThresholdSearch(candidates)
    cache = tempfile.mkdtemp(
        prefix=f'.ensemble_cache_{rank}_',
        dir=out_dir) if postprocess else None
    try:
        num_cached, error = 0, None
        try:
            for item in ensemble.items(True, positions):
                merged = ensemble.merge(item.probs)
                search.update(merged, item.targets)
                if cache is not None:
                    np.save(
                        osp.join(cache, f'{num_cached}_p.npy'),
                        np.rint(merged * 65535).astype(np.uint16))
                    t = item.targets
                    np.save(
                        osp.join(cache, f'{num_cached}_t.npy'),
                        pack_multilabel(t == 1, (t == 255).any(0)))
                    num_cached += 1
                advance_progress(bar, item.position, len(ensemble))
                del merged, item
        except Exception as err:  # noqa: B902 (raised on every rank)
            error = err
        sync_errors(error)
        search.sums = sum_over_ranks(search.sums)
        search.num = sum_over_ranks(search.num)
        best_thr, best_dice = search.best()
        # Rank 0 holds the first image, so its class names are set.
        classes = run_on_main(lambda: list(ensemble.classes))
        ensemble.classes = classes
        plan, report = {}, {}
        if cache is not None:
            c = len(classes)

            def pairs():
                for i in range(num_cached):
                    p = np.load(osp.join(cache, f'{i}_p.npy'))
                    pred = (p > (best_thr.astype(np.float64) * 65535).reshape(
                        -1, 1, 1)).astype(np.uint8)
                    t = unpack_multilabel(
                        np.load(osp.join(cache, f'{i}_t.npy')), c)
                    yield pred, t

            pp_sums, pp_num, error = None, 0, None
            try:
                pp_sums, pp_num = postprocess_dice_sums(
                    pairs(), classes, pp_candidates)
            except Exception as err:  # noqa: B902 (raised on every rank)
                error = err
            sync_errors(error)
            plan, report = choose_postprocess(
                sum_over_ranks(pp_sums),
                sum_over_ranks(pp_num),
                classes,
                pp_candidates,
                min_gain=min_gain)
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)

    def write_thresholds():
        mean = search.mean_dice()
        content = dict(
            classes=classes,
            thresholds=_f32_list(best_thr),
            dice=[float(v) for v in best_dice],
            mDice=float(np.mean(best_dice)),
            num_images=search.num,
            strategy=ensemble.strategy,
            decision='threshold',
            members=ensemble.member_names,
            search=dict(
                candidates=_f32_list(search.thresholds),
                mean_dice=mean.tolist()),
            postprocess=plan)
        if hard:
            content['k'] = [int(round(t * e + 0.5)) for t in best_thr]
        if postprocess:
            content['postprocess_report'] = report
        dump_json_atomic(content, osp.join(out_dir, 'thresholds.json'))
        x = search.thresholds
        xlabel = 'threshold'
        best_x = best_thr
        if hard:
            x = np.rint(x * e + 0.5)
            best_x = np.rint(best_thr * e + 0.5)
            xlabel = f'votes needed k (of E={e})'
        plot_threshold_curves(
            x,
            mean,
            classes,
            best_x,
            osp.join(out_dir, 'thresholds.png'),
            xlabel=xlabel,
            title=f'{ensemble.strategy} ensemble of {e}: mean Dice '
            f'{content["mDice"]:.4f} over {search.num} images')
        return content

    return run_on_main(write_thresholds)


class SubmissionSpool:
    """Submission rows spooled to a temporary file, written at the end.

    Keeps only a ``(name, offset, size)`` index in memory (not the RLE
    strings, which for large masks are kilobytes per class), so writing a
    submission does not make peak memory grow with the number of images.

    - ``'hand_bone'``: ``image_name,class,rle``, images sorted by name,
      classes in order: the layout of ``write_submission_csv`` of
      :mod:`mmseg_ext.evaluation.metrics.hand_bone_submission`, whose
      header is reused; that function takes all records in memory, so the
      sorted copy is done here.
    - ``'building'``: ``img_id,mask_rle`` in input order (the ``key`` of
      :meth:`add`: the image's position, so rows of several ranks merge in
      order), ``-1`` for an empty mask, through ``write_submission_csv`` of
      :mod:`mmseg_ext.evaluation.metrics.building_dice_metric` (fed lazily)
      when importable.

    Under a process group each rank spools its own rows and
    :meth:`gather_to_main` streams them into rank 0's spool, which writes
    the one CSV.

    Args:
        kind (str): ``'hand_bone'`` or ``'building'``.
        path (str): The CSV to write (atomically, by :meth:`close`).
        classes (Sequence[str]): Class names (hand-bone rows).
    """

    def __init__(self, kind: str, path: str, classes: Sequence[str]) -> None:
        if kind not in SUBMISSIONS:
            raise ValueError(f'`submission` should be one of {SUBMISSIONS}, '
                             f'but got {kind!r}')
        self.kind, self.path, self.classes = kind, path, list(classes)
        folder = osp.dirname(osp.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self._file = tempfile.TemporaryFile(
            mode='w+',
            encoding='utf-8',
            newline='',
            dir=folder,
            prefix=f'.{osp.basename(path)}.spool')
        # (sort key, name, offset, size) per image
        self.index: List[Tuple[Union[str, int], str, int, int]] = []
        self._names = set()

    def add(self,
            name: str,
            rles: Union[str, Sequence[str]],
            key: Union[None, str, int] = None) -> None:
        """One image: hand-bone ``C`` RLEs, or the building RLE.

        Args:
            name (str): Hand-bone ``image_name`` / building ``img_id``.
            rles (str | Sequence[str]): The ``C`` RLEs / the RLE.
            key (str | int, optional): Sort key of the row(s) in the CSV.
                Defaults to ``name`` (hand bone) or the order of the calls
                (building).
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator='\n')
        if self.kind == 'hand_bone':
            if len(rles) != len(self.classes):
                raise ValueError(f'image {name!r} should have '
                                 f'{len(self.classes)} RLEs, but got '
                                 f'{len(rles)}')
            writer.writerows((name, c, r) for c, r in zip(self.classes, rles))
        else:
            writer.writerow((name, rles))
        self.add_text(name, buf.getvalue(), key)

    def add_text(self,
                 name: str,
                 text: str,
                 key: Union[None, str, int] = None) -> None:
        """Spool the CSV text of one image's row(s) (see :meth:`add`)."""
        if name in self._names:
            raise ValueError(f'image {name!r} has two predictions; image '
                             'names should be unique in a submission')
        self._names.add(name)
        if key is None:
            key = name if self.kind == 'hand_bone' else len(self.index)
        self._file.seek(0, os.SEEK_END)
        offset = self._file.tell()  # an opaque text-mode cookie
        self._file.write(text)
        self.index.append((key, name, offset, len(text)))

    def records(self, start: int, stop: int) -> List[Tuple]:
        """``(key, name, text)`` of the images ``start .. stop - 1`` (in
        the order they were added)."""
        out = []
        for key, name, offset, size in self.index[start:stop]:
            self._file.seek(offset)
            out.append((key, name, self._file.read(size)))
        return out

    def gather_to_main(self, max_bytes: int = 8 << 20) -> None:
        """Move the rows of every rank into rank 0's spool (every rank
        calls it; chunks of about ``max_bytes`` travel at a time). No-op
        without a process group."""
        rank, world_size = dist_info()
        if world_size == 1:
            return
        bounds = [] if rank == 0 else chunk_bounds(
            [size for *_, size in self.index], max_bytes)

        def consume(src, records):
            for key, name, text in records:
                self.add_text(name, text, key)

        gather_chunks(len(bounds), lambda i: self.records(*bounds[i]), consume)

    def _sorted_texts(self) -> Iterator[str]:
        for _, _, offset, size in sorted(self.index, key=lambda e: e[0]):
            self._file.seek(offset)
            yield self._file.read(size)

    def _rows(self) -> Iterator[Tuple[str, str]]:
        for text in self._sorted_texts():
            row = next(csv.reader([text]))
            yield row[0], row[1]

    def discard(self) -> None:
        """Drop the spooled rows; write nothing."""
        self._file.close()

    def close(self) -> int:
        """Write the CSV; return the number of rows (without header)."""
        try:
            if self.kind == 'building':
                try:
                    from mmseg_ext.evaluation.metrics.building_dice_metric \
                        import write_submission_csv
                except ImportError:
                    write_submission_csv = _building_csv
                write_submission_csv(self.path, self._rows())
                return len(self.index)
            try:
                from mmseg_ext.evaluation.metrics.hand_bone_submission \
                    import SUBMISSION_HEADER as header
            except ImportError:
                header = ('image_name', 'class', 'rle')
            with atomic_path(self.path) as tmp:
                with open(tmp, 'w', encoding='utf-8', newline='') as out:
                    out.write(','.join(header) + '\n')
                    for text in self._sorted_texts():
                        out.write(text)
            return len(self.index) * len(self.classes)
        finally:
            self._file.close()


def _building_csv(path: str, rows) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8', newline='') as f:
            writer = csv.writer(f, lineterminator='\n')
            writer.writerow(('img_id', 'mask_rle'))
            writer.writerows((i, r or '-1') for i, r in rows)


def _resolve_thresholds(ensemble: Ensemble, thresholds, use_postprocess,
                        num_classes: int) -> Tuple[np.ndarray, dict]:
    """``(C,)`` thresholds and the post-processing plan of a test run."""
    thr = ensemble.default_thresholds()
    if thresholds is None:
        return thr, {}
    if ensemble.strategy == 'hard':
        if _is_number(thresholds):
            raise ValueError('the hard strategy takes --k (votes needed) or '
                             'a thresholds.json of a hard --split val run, '
                             'not a number')
        if ensemble.k is not None:
            raise ValueError('give either --k or --thresholds for the hard '
                             'strategy, not both')
    spec = load_thresholds(thresholds, num_classes)
    if spec['strategy'] not in (None, ensemble.strategy):
        raise ValueError(f'{thresholds} was searched for the '
                         f'{spec["strategy"]!r} strategy, but this run uses '
                         f'{ensemble.strategy!r}; search again with --split '
                         'val')
    plan = spec['postprocess'] if use_postprocess else {}
    names = spec['classes']
    if plan and names is not None:
        if len(names) != num_classes:
            raise ValueError(f'{thresholds} names {len(names)} classes, but '
                             f'the members predict C={num_classes}')
        ensemble.classes = list(names)
    return spec['thresholds'], plan


def ensemble_test(ensemble: Ensemble,
                  out_dir: Optional[str] = None,
                  thresholds: Union[None, float, str] = None,
                  use_postprocess: bool = True,
                  submission: Optional[str] = None,
                  submission_file: Optional[str] = None,
                  class_index: Optional[int] = None,
                  progress: bool = True) -> dict:
    """Predict the test split: masks and/or a submission CSV.

    Per image: merge, decide (thresholds from ``thresholds``: a number or
    ``thresholds.json`` of :func:`ensemble_val`, with its post-processing
    plan unless ``use_postprocess=False``; default 0.5, or ``(k - 0.5) / E``
    for ``'hard'``), then write ``{out_dir}/{stem}.png``: a packed label
    (``write_packed_label``) for ``C > 1`` masks, a 0/255 PNG for
    ``C == 1``, a class-index PNG for ``'argmax'``. Submission rows go to
    a :class:`SubmissionSpool` (a temporary file beside the CSV), so memory
    does not grow with the number of images; the CSV is written at the
    end, atomically. Unnamed 29-class hand-bone rows get the competition's
    class names.

    Returns:
        dict: ``num_images``, ``thresholds``, ``postprocess`` and the
        outputs.
    """
    if out_dir is None and submission is None:
        raise ValueError('the test split writes nothing: give --out-dir '
                         '(masks) and/or --submission with --out')
    if submission is not None:
        if submission not in SUBMISSIONS:
            raise ValueError(f'`submission` should be one of {SUBMISSIONS}, '
                             f'but got {submission!r}')
        if not submission_file:
            raise ValueError('--submission needs --out FILE (the CSV)')
        if submission == 'hand_bone' and ensemble.decision != 'threshold':
            raise ValueError('the hand-bone submission needs multi-label '
                             'masks (threshold decision), but the decision '
                             'is argmax')
    if ensemble.decision == 'argmax' and thresholds is not None:
        raise ValueError('`--thresholds` apply to the threshold decision, '
                         'but the decision is argmax (softmax members)')
    rank, world_size = dist_info()
    bar = _progress(len(ensemble)) if progress and rank == 0 else None
    thr, plan, spool, num, error = None, {}, None, 0, None
    try:
        try:
            for item in ensemble.items(positions=shard(len(ensemble))):
                if num == 0 and ensemble.decision == 'threshold':
                    thr, plan = _resolve_thresholds(ensemble, thresholds,
                                                    use_postprocess,
                                                    item.probs[0].shape[0])
                pred = ensemble.predict(item.probs, thr)
                if plan:
                    pred = apply_postprocess(pred, plan, ensemble.classes)
                if out_dir is not None:
                    _write_prediction(
                        osp.join(out_dir, item.stem + '.png'), pred,
                        ensemble.decision)
                if submission is not None and spool is None:
                    spool = SubmissionSpool(
                        submission, submission_file,
                        _submission_classes(ensemble)
                        if submission == 'hand_bone' else ensemble.classes)
                if submission == 'hand_bone':
                    spool.add(item.name, [rle_encode(m) for m in pred])
                elif submission == 'building':
                    mask = _building_mask(pred, ensemble.decision, class_index)
                    spool.add(item.img_id, rle_encode(mask), item.position)
                num += 1
                advance_progress(bar, item.position, len(ensemble))
                del pred, item
            if submission is not None and spool is None:
                # No image (on this rank): an empty spool; rank 0 writes
                # the header.
                spool = SubmissionSpool(submission, submission_file,
                                        ensemble.classes or [])
        except Exception as err:  # noqa: B902 (raised on every rank)
            error = err
        sync_errors(error)
        num = sum_over_ranks(num)
        if spool is not None:
            spool.gather_to_main()
            if rank == 0:
                spool.close()
            else:
                spool.discard()
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
    if world_size > 1:
        thr = run_on_main(lambda: thr)
        plan = run_on_main(lambda: plan)
    return dict(
        num_images=num,
        members=len(ensemble.members),
        thresholds=None if thr is None else _f32_list(thr),
        postprocess=plan,
        out_dir=out_dir,
        submission=submission_file)


def _write_prediction(path: str, pred: np.ndarray, decision: str) -> None:
    """Packed PNG (``C > 1`` masks), 0/255 PNG (``C == 1``) or class-index
    PNG (``'argmax'``), atomically."""
    if decision == 'argmax':
        imwrite_atomic(pred, path)
    elif pred.shape[0] == 1:
        imwrite_atomic(pred[0] * np.uint8(255), path)
    else:
        write_packed_label(path, pack_multilabel(pred))


def _building_mask(pred: np.ndarray, decision: str,
                   class_index: Optional[int]) -> np.ndarray:
    """The ``(H, W)`` bool building mask of a prediction."""
    if decision == 'argmax':
        if class_index is None:
            class_index = 1  # softmax classes: background, building
        return pred == class_index
    c = pred.shape[0]
    class_index = 0 if class_index is None else class_index
    if not 0 <= class_index < c:
        raise ValueError(f'--class-index should be in [0, C={c}), but got '
                         f'{class_index}')
    return pred[class_index] != 0


def _submission_classes(ensemble: Ensemble) -> List[str]:
    """Class names of hand-bone rows: unnamed 29 classes are the
    competition's (``HAND_BONE_CLASSES``)."""
    names = ensemble.classes
    if names == [str(c) for c in range(len(names))]:
        try:
            from mmseg_ext.datasets.generators.hand_bone import \
                HAND_BONE_CLASSES
        except ImportError:
            return names
        if len(HAND_BONE_CLASSES) == len(names):
            return list(HAND_BONE_CLASSES)
    return names


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
