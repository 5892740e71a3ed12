# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS brain tumour as 2D axial slices of the converter's cache."""
import os.path as osp
import zlib
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmseg.registry import DATASETS

from ..packed_multilabel import PackedMultiLabelDataset
from .convert import BRATS_CACHE_DIR, read_brats_index
from .labels import REGIONS
from .layout import MODALITIES, MODALITY_NAMES

__all__ = ['BraTSDataset', 'BRATS_PALETTE']

#: Region colours (RGB): WT green, TC red, ET yellow.
BRATS_PALETTE = [[0, 200, 0], [220, 20, 60], [255, 215, 0]]

SPLITS = ('train', 'val', 'all', 'test')
_CONVERT_HINT = ('run `python tools/dataset_converters/brats.py {root}` '
                 'first: it writes the slice cache, index.json and the '
                 'patient-level fold files')


def _modality_lookup() -> Dict[str, str]:
    """Physical name or any file tag → physical name."""
    out = {m: m for m in MODALITIES}
    for tags in MODALITY_NAMES.values():
        out.update({t: MODALITIES[i] for i, t in enumerate(tags)})
    return out


def sample_tumour_slices(candidates: Sequence[int], tumour: Sequence[int],
                         tumour_ratio: Optional[float],
                         rng: np.random.Generator) -> List[int]:
    """The slices of one case kept for training (sorted).

    Every candidate slice with tumour is kept; of the candidates without
    tumour, ``n = min(N, floor(r * T / (1 - r)))`` are drawn without
    replacement (``T`` tumour slices, ``N`` tumour-free ones, ``r =
    tumour_ratio``), so at most a fraction ``r`` of the kept slices is
    tumour-free: ``r = 0`` keeps only tumour slices (a case without tumour
    then contributes none), ``r = 1`` (or None) keeps every candidate.
    """
    candidates = sorted(int(z) for z in candidates)
    if tumour_ratio is None or tumour_ratio >= 1:
        return candidates
    tumour = set(int(z) for z in tumour)
    pos = [z for z in candidates if z in tumour]
    neg = [z for z in candidates if z not in tumour]
    # The small epsilon keeps r * T / (1 - r) = 2.0000000000000004 at 2.
    n = min(len(neg),
            int(np.floor(tumour_ratio * len(pos) / (1 - tumour_ratio) +
                         1e-9)))
    picked = rng.choice(len(neg), size=n, replace=False) if n else []
    return sorted(pos + [neg[i] for i in picked])


@DATASETS.register_module()
class BraTSDataset(PackedMultiLabelDataset):
    """BraTS slices: the modalities as channels, regions WT/TC/ET as
    overlapping multi-label classes.

    Reads the cache written by ``tools/dataset_converters/brats.py`` (see
    :mod:`mmseg_ext.datasets.brats.convert`)::

        {data_root}/{cache_dir}/index.json
        {data_root}/{cache_dir}/cases/{case_id}/image.npy   # (Z, X, Y, C)
        {data_root}/{cache_dir}/cases/{case_id}/label.npy   # (Z, X, Y, 1)
        {data_root}/{cache_dir}/splits/fold{k}_{train,val}.txt, all.txt,
                                       test.txt

    One data info per axial slice, sorted by case id then slice index:
    ``img_path`` (the case's ``image.npy``), ``seg_map_path`` (its
    ``label.npy``; absent for ``split='test'``), ``case_id``,
    ``slice_index`` (``z``), ``case_slices`` (how many slices of the case
    this dataset lists), ``brats_case`` (the case's index entry without the
    converter's ``stamps``), ``num_classes`` (3), ``context_slices`` and
    ``modality_channels`` (for :class:`LoadBraTSSlice`). Val and test
    datasets list every slice of each case's ``slice_range`` (the slices
    with brain), which the volume metric needs to rebuild the case.

    Training slices (``split='train'`` or ``'all'``) can be chosen:

    - ``skip_empty``: None or True keeps the slices in ``slice_range``;
      False keeps every slice ``0 .. Z - 1`` (also those without brain).
    - ``tumour_ratio`` ``r``: keep every slice with tumour (WT) and draw,
      per case, ``min(N, floor(r * T / (1 - r)))`` of its ``N`` tumour-free
      slices (``T`` tumour slices), so at most a fraction ``r`` of each
      case's slices (and so of the dataset) is tumour-free. The draw is
      made once, when the dataset is built, from
      ``default_rng([seed, crc32(case_id)])``: the same slices for a given
      seed, whatever other cases the split holds. None keeps all.

    Args:
        data_root (str): The BraTS root (the converter's ``ROOT``).
        split (str): ``'train'`` / ``'val'`` (the fold's cases; need
            ``fold``), ``'all'`` (every labelled case) or ``'test'`` (the
            unlabelled cases, no labels). Defaults to ``'train'``.
        fold (int, optional): Fold index for ``'train'``/``'val'``.
            Defaults to 0.
        cache_dir (str): The converter's ``--out-dir``, relative to
            ``data_root`` (or absolute). Defaults to ``'brats_slices'``.
        context_slices (int): ``k``: 2.5D input of the slices ``z - k ..
            z + k`` of every modality (``C * (2k + 1)`` channels, see
            :class:`LoadBraTSSlice`). Defaults to 0.
        skip_empty (bool, optional): See above (train and all only).
            Defaults to None.
        tumour_ratio (float, optional): See above (train and all only), in
            ``[0, 1]``. Defaults to None.
        modalities (Sequence[str], optional): A subset of the cached
            modalities (physical names ``'T1ce'`` or file tags ``'t1ce'``),
            in channel order. Defaults to None (every cached one).
        seed (int): Seed of the ``tumour_ratio`` draw. Defaults to 0.
        **kwargs: Passed to :class:`PackedMultiLabelDataset` and MMSeg's
            ``BaseSegDataset`` (``pipeline``, ``test_mode``, ...).

    Raises:
        ValueError: for a bad ``split``, ``fold``, ``context_slices``,
            ``tumour_ratio`` or ``modalities``, or sampling options on a
            val/test split.
        FileNotFoundError: if the index, a split file or a case's cache
            file is missing (the message says to run the converter).
        InputError: for an index that does not parse or is malformed.

    Examples:
        >>> dataset = DATASETS.build(dict(
        ...     type='BraTSDataset', data_root='data/brats', split='val',
        ...     fold=0, pipeline=[dict(type='LoadBraTSSlice')]))
        >>> dataset[0]['img'].shape
        (240, 240, 4)
    """
    METAINFO = dict(classes=REGIONS, palette=BRATS_PALETTE)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 fold: Optional[int] = 0,
                 cache_dir: str = BRATS_CACHE_DIR,
                 context_slices: int = 0,
                 skip_empty: Optional[bool] = None,
                 tumour_ratio: Optional[float] = None,
                 modalities: Optional[Sequence[str]] = None,
                 seed: int = 0,
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'`split` should be one of {SPLITS}, but got '
                             f'{split!r}')
        if split in ('train', 'val') and (isinstance(fold, bool) or
                                          not isinstance(fold, int)
                                          or fold < 0):
            raise ValueError(
                f'`fold` should be an int >= 0 for split={split!r}, but got '
                f"{fold!r}; use split='all' to train on every labelled case")
        if isinstance(context_slices, bool) or not isinstance(
                context_slices, int) or context_slices < 0:
            raise ValueError('`context_slices` should be an int >= 0, but '
                             f'got {context_slices!r}')
        if tumour_ratio is not None and (
                isinstance(tumour_ratio, bool)
                or not isinstance(tumour_ratio, (int, float))
                or not 0 <= tumour_ratio <= 1):
            raise ValueError('`tumour_ratio` should be None or a number in '
                             f'[0, 1], but got {tumour_ratio!r}')
        if split in ('val', 'test') and (skip_empty is not None
                                         or tumour_ratio is not None):
            raise ValueError(
                f'`skip_empty` and `tumour_ratio` should be None for '
                f'split={split!r} (the volume metric needs every slice of '
                f'a case), but got skip_empty={skip_empty!r}, '
                f'tumour_ratio={tumour_ratio!r}')
        if modalities is not None and (isinstance(modalities, str)
                                       or not len(modalities)):
            raise ValueError('`modalities` should be None or a non-empty '
                             f'list of names, but got {modalities!r}')
        for key in ('ann_file', 'data_prefix', 'img_suffix',
                    'seg_map_suffix'):
            if key in kwargs:
                raise TypeError(
                    f'BraTSDataset sets `{key}` from `split`, `fold` and '
                    f'`cache_dir`; got {key}={kwargs[key]!r}')
        self.split = split
        self.fold = fold if split in ('train', 'val') else None
        self.context_slices = context_slices
        self.skip_empty = skip_empty
        self.tumour_ratio = tumour_ratio
        self.modalities = None if modalities is None else list(modalities)
        self.seed = seed
        name = f'fold{fold}_{split}' if split in ('train', 'val') else split
        super().__init__(
            ann_file=osp.join(cache_dir, 'splits', name + '.txt'),
            data_root=data_root,
            data_prefix=dict(img_path=cache_dir),
            img_suffix='.npy',
            seg_map_suffix='.npy',
            **kwargs)

    def _modality_channels(self, cached: List[str],
                           index_path: str) -> Optional[List[int]]:
        if self.modalities is None:
            return None
        lookup = _modality_lookup()
        out = []
        for m in self.modalities:
            name = lookup.get(m)
            if name is None or name not in cached:
                raise ValueError(
                    f'`modalities` should name cached modalities {cached} '
                    f'(physical names or file tags) of {index_path}, but '
                    f'got {m!r}')
            out.append(cached.index(name))
        if len(set(out)) != len(out):
            raise ValueError('`modalities` should not repeat a modality, '
                             f'but got {self.modalities!r}')
        return out

    def load_data_list(self) -> List[dict]:
        """One data info per slice; see the class docstring."""
        cache = self.data_prefix['img_path']
        hint = _CONVERT_HINT.format(root=self.data_root)
        index_path = osp.join(cache, 'index.json')
        if not osp.isfile(index_path):
            raise FileNotFoundError(
                f'BraTS slice index {index_path} does not exist; {hint}')
        index = read_brats_index(index_path)
        channels = self._modality_channels(index['modalities'], index_path)
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'split file {self.ann_file} (split={self.split!r}, '
                f'fold={self.fold!r}) does not exist; {hint} (with '
                '`--num-folds` greater than the fold index)')
        with open(self.ann_file, encoding='utf-8') as f:
            case_ids = sorted({
                line.strip()
                for line in f if line.strip() and not line.startswith('#')
            })
        labelled = self.split != 'test'
        train = self.split in ('train', 'all')
        infos = []
        for case_id in case_ids:
            entry = index['cases'].get(case_id)
            if entry is None:
                raise FileNotFoundError(
                    f'case {case_id!r} of {self.ann_file} is not in '
                    f'{index_path}; {hint}')
            if labelled and not entry['labelled']:
                raise FileNotFoundError(
                    f'case {case_id!r} of {self.ann_file} has no label in '
                    f'{index_path}; {hint}')
            for key in ('image', 'label') if labelled else ('image', ):
                if not osp.isfile(entry[key]):
                    raise FileNotFoundError(
                        f'{entry[key]} (case {case_id!r}) does not exist; '
                        f'{hint}')
            z0, z1 = entry['slice_range']
            slices = list(range(z0, z1))
            if train:
                if self.skip_empty is False:
                    slices = list(range(entry['shape'][2]))
                rng = np.random.default_rng(
                    [self.seed, zlib.crc32(case_id.encode())])
                slices = sample_tumour_slices(slices, entry['tumour_slices'],
                                              self.tumour_ratio, rng)
            case = {k: v for k, v in entry.items() if k != 'stamps'}
            for z in slices:
                info = dict(
                    img_path=entry['image'],
                    case_id=case_id,
                    slice_index=z,
                    case_slices=len(slices),
                    brats_case=case,
                    num_classes=self.num_classes,
                    context_slices=self.context_slices,
                    modality_channels=channels,
                    label_map=self.label_map,
                    reduce_zero_label=False,
                    seg_fields=[])
                if labelled:
                    info['seg_map_path'] = entry['label']
                infos.append(info)
        return infos

    def get_pixel_counter(self) -> dict:
        """``TASK_UTILS`` config of the counter of the cached label.npy
        volumes (``BraTSPixelCounter``)."""
        return dict(type='BraTSPixelCounter')
