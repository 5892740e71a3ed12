# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Hand-bone X-ray dataset: 29 overlapping bone classes (multi-label)."""
import os.path as osp
from typing import List, Optional

from mmseg.registry import DATASETS

from .converters.hand_bone import HAND_BONE_LAYOUT, list_hand_bone_images
from .generators.hand_bone import HAND_BONE_CLASSES, HAND_BONE_PALETTE
from .packed_multilabel import PackedMultiLabelDataset

__all__ = ['HandBoneDataset', 'HAND_BONE_CLASSES', 'HAND_BONE_PALETTE']

SPLITS = ('train', 'val', 'test', 'all')
_CONVERT_HINT = ('run `python tools/dataset_converters/hand_bone.py {root}` '
                 'first: it rasterises the polygons into packed labels and '
                 'writes the patient-grouped fold files')


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
        **kwargs: Passed to :class:`PackedMultiLabelDataset` and MMSeg's
            ``BaseSegDataset`` (``pipeline``, ``test_mode``,
            ``serialize_data`` ...).

    Raises:
        ValueError: for a bad ``split`` or ``fold``.
        FileNotFoundError: if the split file or packed labels are missing
            (the message says to run the converter), or ``test/DCM`` holds
            no image.

    Examples:
        >>> dataset = DATASETS.build(dict(
        ...     type='HandBoneDataset', data_root='data/hand_bone',
        ...     split='val', fold=0, pipeline=[]))
        >>> dataset[0]['num_classes']
        29
    """
    METAINFO = dict(classes=HAND_BONE_CLASSES, palette=HAND_BONE_PALETTE)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 fold: Optional[int] = 0,
                 split_dir: str = HAND_BONE_LAYOUT['splits'],
                 label_dir: str = HAND_BONE_LAYOUT['labels'],
                 **kwargs) -> None:
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
            return [self._info(rel) for rel in rels]

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

