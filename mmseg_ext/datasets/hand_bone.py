# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Hand-bone X-ray dataset: 29 overlapping bone classes (multi-label)."""
import json
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Union

from mmengine.logging import print_log
from mmseg.registry import DATASETS

__all__ = [
    'HandBoneDataset', 'HAND_BONE_CLASSES', 'HAND_BONE_PALETTE',
    'hand_side_from_name', 'resolve_hand_side', 'load_hand_side_mapping'
]

# The one source of the 29 class names (``HandBoneDataset.METAINFO``); the
# converter, generator, metric and task adapter import them from here.
HAND_BONE_CLASSES = (
    'finger-1', 'finger-2', 'finger-3', 'finger-4', 'finger-5', 'finger-6',
    'finger-7', 'finger-8', 'finger-9', 'finger-10', 'finger-11', 'finger-12',
    'finger-13', 'finger-14', 'finger-15', 'finger-16', 'finger-17',
    'finger-18', 'finger-19', 'Trapezium', 'Trapezoid', 'Capitate', 'Hamate',
    'Scaphoid', 'Lunate', 'Triquetrum', 'Pisiform', 'Radius', 'Ulna')

# The competition's visualisation palette (RGB), one colour per class.
HAND_BONE_PALETTE = [
    [220, 20, 60], [119, 11, 32], [0, 0, 142], [0, 0, 230], [106, 0, 228],
    [0, 60, 100], [0, 80, 100], [0, 0, 70], [0, 0, 192], [250, 170, 30],
    [100, 170, 30], [220, 220, 0], [175, 116, 175], [250, 0, 30],
    [165, 42, 42], [255, 77, 255], [0, 226, 252], [182, 182, 255],
    [0, 82, 0], [120, 166, 157], [110, 76, 0], [174, 57, 255],
    [199, 100, 0], [72, 0, 118], [255, 179, 240], [0, 125, 92],
    [209, 0, 151], [188, 208, 182], [0, 220, 176]
]

# Defined before these imports: the converter imports the class list from
# this (then partially initialised) module.
from .converters.hand_bone import (  # noqa: E402
    HAND_BONE_LAYOUT, list_hand_bone_images)
from .packed_multilabel import PackedMultiLabelDataset  # noqa: E402

from .transforms.unify_flip import UNIFY_KEY, insert_unify_flip  # noqa: E402

SPLITS = ('train', 'val', 'test', 'all')
UNKNOWN_SIDE = ('error', 'keep')
_SIDE_RE = re.compile(r'_([LR])$', re.IGNORECASE)
_SIDE_WORDS = dict(l='L', r='R', left='L', right='R')
HandSide = Union[None, str, Dict[str, str], Callable[[str], Optional[str]]]


def hand_side_from_name(path: str) -> Optional[str]:
    """``'L'``/``'R'`` from a ``_L``/``_R`` suffix of the file stem (any
    case), else None.

    Examples:
        >>> hand_side_from_name('ID001/image1661130914565_L.png')
        'L'
        >>> hand_side_from_name('ID001/scan.png') is None
        True
    """
    match = _SIDE_RE.search(osp.splitext(osp.basename(path))[0])
    return match.group(1).upper() if match else None


def _side_value(value, where: str) -> Optional[str]:
    if value is None:
        return None
    side = _SIDE_WORDS.get(str(value).strip().lower()) if isinstance(
        value, str) else None
    if side is None:
        raise ValueError(f"{where}: a hand side should be 'L' or 'R' (or "
                         f"'left'/'right'), but got {value!r}")
    return side


def load_hand_side_mapping(path: str) -> Dict[str, str]:
    """A JSON file ``{image path relative to the image folder, or its stem,
    or its file name: 'L' | 'R'}``, checked.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file, if it is no such object.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'hand-side mapping {path} does not exist')
    with open(path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f'hand-side mapping {path}: not JSON ({e})') \
                from None
    if not isinstance(data, dict):
        raise ValueError(f'hand-side mapping {path} should be a JSON object '
                         "{image: 'L' | 'R'}, but got "
                         f'{type(data).__name__}')
    return {str(k): _side_value(v, f'{path}, key {k!r}')
            for k, v in data.items()}


def resolve_hand_side(rel: str, hand_side: HandSide = None) -> Optional[str]:
    """The side (``'L'``/``'R'``) of image ``rel`` (relative to the image
    folder), or None if it cannot be told.

    ``hand_side`` first: a dict looked up by ``rel``, then the stem, then
    the file name; a callable called with ``rel``; then the ``_L``/``_R``
    suffix (:func:`hand_side_from_name`). A mapping or callable that knows
    the image wins over the name.
    """
    side = None
    if callable(hand_side):
        side = _side_value(hand_side(rel), f'hand_side({rel!r})')
    elif isinstance(hand_side, dict):
        base = osp.basename(rel)
        for key in (rel, osp.splitext(base)[0], base):
            if key in hand_side:
                side = _side_value(hand_side[key], f'hand_side[{key!r}]')
                break
    return side or hand_side_from_name(rel)


_CONVERT_HINT = ('run `python tools/dataset_converters/hand_bone.py {root}` '
                 'first: it rasterises the polygons into packed labels and '
                 'writes the patient-grouped fold files')


def _warn_horizontal_flip(pipeline) -> None:
    """Warn about a horizontal ``RandomFlip``/``Albu HorizontalFlip``: it
    turns unified (right) hands back into left ones."""
    for t in pipeline:
        if not isinstance(t, dict):
            continue
        direction = t.get('direction', 'horizontal')
        names = [t.get('type')] + [
            a.get('type') for a in t.get('transforms', [])
            if isinstance(a, dict)
        ] if t.get('type') == 'Albu' else [t.get('type')]
        flips = (t.get('type') == 'RandomFlip' and t.get('prob') and (
            direction == 'horizontal' or 'horizontal' in direction)) or \
            'HorizontalFlip' in names
        if flips:
            print_log(
                'HandBoneDataset(unify_hands=True): the pipeline flips '
                f'horizontally ({t}), which mirrors unified right hands back '
                'into left ones; drop it (or use unify_hands=False)',
                logger='current', level=30)


@DATASETS.register_module()
class HandBoneDataset(PackedMultiLabelDataset):
    """The hand-bone X-ray segmentation dataset (competition layout).

    Each pixel may belong to several of the 29 classes (bones overlap), so
    labels are the packed bitmask PNGs written once by
    ``tools/dataset_converters/hand_bone.py`` (see
    :mod:`mmseg_ext.datasets.converters.hand_bone`), read by
    ``LoadMultiLabelAnnotations`` as a ``(H, W, 2)`` uint16 map. Layout::

        {data_root}/train/DCM/{ID}/{name}.png            # images
        {data_root}/train/packed_labels/{ID}/{name}.png  # converter output
        {data_root}/splits/fold{k}_{train,val}.txt       # converter output
        {data_root}/splits/all.txt                       # converter output
        {data_root}/test/DCM/{ID}/{name}.png             # test, no labels

    Every data info carries ``num_classes`` (29), which the multi-label
    transforms read, and ``img_path``/``seg_map_path`` (no
    ``seg_map_path`` for ``split='test'``). ``get_pixel_counter()``
    (inherited) makes ``ClassWeightHook`` count positive pixels per class
    from the packed labels (``PackedLabelPixelCounter``).

    Args:
        data_root (str): Dataset root.
        split (str): ``'train'`` / ``'val'`` (the fold's training or
            validation patients; need ``fold``), ``'all'`` (every converted
            training image) or ``'test'`` (every image under ``test/DCM``,
            no labels). Defaults to ``'train'``.
        fold (int, optional): Fold index for ``'train'``/``'val'``; ignored
            for ``'all'`` and ``'test'``. Defaults to 0.
        split_dir (str): Folder of the split files, relative to
            ``data_root``. Defaults to ``'splits'``.
        label_dir (str): Folder of the packed labels, relative to
            ``data_root``. Defaults to ``'train/packed_labels'``.
        unify_hands (bool): Flip every left hand (image and labels) into
            the right-hand orientation at load. A :class:`UnifyFlip` is put
            after every ``Load*`` transform of the pipeline (unless the
            pipeline has one), so any pipeline works unchanged; data infos
            get ``hand_side`` and ``unify_flip``, which travels in the
            metainfo, and ``MultiLabelEncoderDecoder`` flips its outputs
            back: predictions, probabilities, submissions, ensembles and
            pseudo-labels are in the original orientation. Defaults to
            False.
        hand_side (dict | str | callable, optional): Side of images whose
            name does not tell it (or overrides the name): a dict or a
            JSON file ``{rel path | stem | file name: 'L' | 'R'}``, or a
            callable ``f(rel) -> 'L' | 'R' | None``. Defaults to None (the
            ``_L``/``_R`` suffix of the file stem, any case).
        unknown_side (str): For an image of unknown side with
            ``unify_hands``: ``'error'`` (raise, naming the file) or
            ``'keep'`` (leave it unflipped, with one warning listing how
            many). Defaults to ``'error'``.
        **kwargs: Passed to :class:`PackedMultiLabelDataset` and MMSeg's
            ``BaseSegDataset`` (``pipeline``, ``test_mode``,
            ``serialize_data`` ...).

    Raises:
        ValueError: for a bad ``split``, ``fold`` or ``unknown_side``, or
            (``unify_hands``, ``unknown_side='error'``) an image whose side
            is unknown.
        FileNotFoundError: if the split file or packed labels are missing
            (the message says to run the converter), or ``test/DCM`` holds
            no image.

    Examples:
        >>> dataset = DATASETS.build(dict(
        ...     type='HandBoneDataset', data_root='data/hand_bone',
        ...     split='val', fold=0, pipeline=[]))
        >>> dataset[0]['num_classes']
        29
        >>> # left hands flipped to right ones; outputs flipped back
        >>> dataset = DATASETS.build(dict(
        ...     type='HandBoneDataset', data_root='data/hand_bone',
        ...     split='val', unify_hands=True, pipeline=[]))
    """
    METAINFO = dict(classes=HAND_BONE_CLASSES, palette=HAND_BONE_PALETTE)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 fold: Optional[int] = 0,
                 split_dir: str = HAND_BONE_LAYOUT['splits'],
                 label_dir: str = HAND_BONE_LAYOUT['labels'],
                 unify_hands: bool = False,
                 hand_side: HandSide = None,
                 unknown_side: str = 'error',
                 **kwargs) -> None:
        if not isinstance(unify_hands, bool):
            raise TypeError('`unify_hands` should be a bool, but got '
                            f'{unify_hands!r}')
        if unknown_side not in UNKNOWN_SIDE:
            raise ValueError(f'`unknown_side` should be one of '
                             f'{UNKNOWN_SIDE}, but got {unknown_side!r}')
        if isinstance(hand_side, str):
            hand_side = load_hand_side_mapping(hand_side)
        elif hand_side is not None and not (isinstance(hand_side, dict)
                                            or callable(hand_side)):
            raise TypeError('`hand_side` should be None, a dict, a JSON path '
                            f'or a callable, but got {hand_side!r}')
        elif isinstance(hand_side, dict):
            hand_side = {str(k): _side_value(v, f'hand_side[{k!r}]')
                         for k, v in hand_side.items()}
        self.unify_hands = unify_hands
        self.hand_side = hand_side
        self.unknown_side = unknown_side
        if unify_hands:
            kwargs['pipeline'] = insert_unify_flip(kwargs.get('pipeline', []))
            _warn_horizontal_flip(kwargs['pipeline'])
        if split not in SPLITS:
            raise ValueError(f'`split` should be one of {SPLITS}, but got '
                             f'{split!r}')
        if split in ('train', 'val'):
            if isinstance(fold, bool) or not isinstance(fold, int) or \
                    fold < 0:
                raise ValueError(
                    f'`fold` should be an int >= 0 for split={split!r}, but '
                    f"got {fold!r}; use split='all' to train on every "
                    'labelled image')
        for key in ('ann_file', 'data_prefix', 'img_suffix',
                    'seg_map_suffix'):
            if key in kwargs:
                raise TypeError(
                    f'HandBoneDataset sets `{key}` from `split`, `fold`, '
                    f'`split_dir` and `label_dir`; got {key}='
                    f'{kwargs[key]!r}')
        self.split = split
        self.fold = fold if split in ('train', 'val') else None
        if split == 'test':
            ann_file = ''
            data_prefix = dict(img_path=HAND_BONE_LAYOUT['test_images'])
        else:
            name = 'all' if split == 'all' else f'fold{fold}_{split}'
            ann_file = osp.join(split_dir, name + '.txt')
            data_prefix = dict(
                img_path=HAND_BONE_LAYOUT['train_images'],
                seg_map_path=label_dir)
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            img_suffix='.png',
            seg_map_suffix='.png',
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Data infos of the split, sorted by image path."""
        img_dir = self.data_prefix['img_path']
        if self.split == 'test':
            if not osp.isdir(img_dir):
                raise FileNotFoundError(
                    f'the test images folder {img_dir} does not exist; '
                    '`data_root` should hold test/DCM/ID*/*.png')
            rels = list_hand_bone_images(img_dir)
            if not rels:
                raise FileNotFoundError(f'no PNG image under {img_dir}')
            return self._set_sides([self._info(rel) for rel in rels], rels)

        hint = _CONVERT_HINT.format(root=self.data_root)
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'split file {self.ann_file} (split={self.split!r}, '
                f'fold={self.fold!r}) does not exist; {hint} (with '
                '`--num-folds` greater than the fold index)')
        with open(self.ann_file, encoding='utf-8') as f:
            rels = [line.strip() for line in f]
        rels = sorted(r for r in rels if r and not r.startswith('#'))
        infos = [self._info(rel) for rel in rels]
        missing = [i['seg_map_path'] for i in infos
                   if not osp.isfile(i['seg_map_path'])]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of {len(infos)} packed label(s) listed in '
                f'{self.ann_file} are missing, e.g. {missing[0]}; {hint}')
        return self._set_sides(infos, rels)

    def _set_sides(self, infos: List[dict], rels: List[str]) -> List[dict]:
        """``hand_side`` and ``unify_flip`` of every data info."""
        unknown = []
        for info, rel in zip(infos, rels):
            side = resolve_hand_side(rel, self.hand_side)
            info['hand_side'] = side
            info[UNIFY_KEY] = bool(self.unify_hands and side == 'L')
            if side is None:
                unknown.append(info['img_path'])
        if self.unify_hands and unknown:
            what = (f'{len(unknown)} of {len(infos)} image(s) have no known '
                    f'hand side, e.g. {unknown[0]}: their names have no '
                    '_L/_R suffix and `hand_side` does not list them')
            if self.unknown_side == 'error':
                raise ValueError(
                    f'{what}; give `hand_side` (a dict or JSON {{image: '
                    "'L' | 'R'}} or a callable) or unknown_side='keep' to "
                    'leave them unflipped')
            print_log(f'{what}; they are not flipped (unknown_side=keep)',
                      logger='current', level=30)
        return infos

    def _info(self, rel: str) -> dict:
        info = dict(
            img_path=osp.join(self.data_prefix['img_path'], rel),
            label_map=self.label_map,
            reduce_zero_label=False,
            seg_fields=[],
            num_classes=self.num_classes)
        if self.split != 'test':
            info['seg_map_path'] = osp.join(
                self.data_prefix['seg_map_path'], rel)
        return info
