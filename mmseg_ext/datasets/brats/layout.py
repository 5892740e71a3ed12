# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Find BraTS cases on disk: one folder per case, one NIfTI per modality.

Two naming families, both with ``.nii`` or ``.nii.gz`` files:

==========  ==========================================================
family      layout
==========  ==========================================================
brats2020   ``{root}/BraTS20_Training_001/BraTS20_Training_001_{flair,t1,
            t1ce,t2,seg}.nii(.gz)``; ``BraTS20_Validation_001``,
            ``BraTS2021_00000`` (BraTS 2021) alike
brats2023   ``{root}/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1c,t1n,t2w,
            t2f,seg}.nii.gz``
==========  ==========================================================

Modalities are always listed in the same *physical* order, FLAIR, T1,
T1ce, T2 (:data:`MODALITIES`): ``('flair', 't1', 't1ce', 't2')`` for
brats2020 files and ``('t2f', 't1n', 't1c', 't2w')`` for brats2023 files,
so channel ``k`` means the same sequence whatever the year.

The label scheme is auto-detected from the names (brats2020 family →
``'brats2020'``, labels 1, 2, 4; brats2023 → ``'brats2023'``, labels 1, 2,
3) unless ``label_scheme`` is given.

BraTS 2020 case 355 ships its label as ``W39_1998.09.19_Segm.nii``. The
rule: in a case folder without ``{case}_seg``, the NIfTI files that are not
a modality are the candidates; one whose name contains ``segm``
(case-insensitive) wins, else a single candidate is the label; none means
an unlabelled (validation) case, several are an :class:`InputError`.
"""
import os
import os.path as osp
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mmseg_ext.utils.errors import InputError
from .labels import check_label_scheme

__all__ = [
    'MODALITIES', 'MODALITY_NAMES', 'BraTSCase', 'find_brats_cases',
    'select_modalities'
]

#: Physical order of the modalities, the same for every scheme.
MODALITIES: Tuple[str, ...] = ('FLAIR', 'T1', 'T1ce', 'T2')

#: File-name tag of each modality, in the order of :data:`MODALITIES`.
MODALITY_NAMES: Dict[str, Tuple[str, ...]] = {
    'brats2020': ('flair', 't1', 't1ce', 't2'),
    'brats2023': ('t2f', 't1n', 't1c', 't2w'),
}

# Case folder name → naming family; the separator before the tag.
_FAMILIES = (
    ('brats2020', re.compile(r'^BraTS20_[A-Za-z]+_\d+$'), '_'),
    ('brats2020', re.compile(r'^BraTS2021_\d+$'), '_'),
    ('brats2023', re.compile(r'^BraTS-[A-Z]+-\d+-\d+$'), '-'),
)
_NII = ('.nii.gz', '.nii')


class BraTSCase(NamedTuple):
    """One case on disk.

    Attributes:
        case_id (str): The folder name, e.g. ``'BraTS20_Training_001'``.
        case_dir (str): The folder.
        naming (str): The file-name family, ``'brats2020'`` or
            ``'brats2023'`` (picks :data:`MODALITY_NAMES`).
        label_scheme (str): The label scheme of ``seg``.
        modalities (tuple[str]): File-name tags, physical order.
        images (tuple[str | None]): One path per modality; None where the
            file is missing (the reader raises, naming the expected file).
        seg (str | None): The label file; None for unlabelled cases.
    """
    case_id: str
    case_dir: str
    naming: str
    label_scheme: str
    modalities: Tuple[str, ...]
    images: Tuple[Optional[str], ...]
    seg: Optional[str]

    def expected_path(self, tag: str) -> str:
        """Where the ``tag`` file should be (``.nii.gz`` form)."""
        sep = '_' if self.naming == 'brats2020' else '-'
        return osp.join(self.case_dir, f'{self.case_id}{sep}{tag}.nii.gz')


def _nifti_stem(name: str) -> Optional[str]:
    for ext in _NII:
        if name.endswith(ext):
            return name[:-len(ext)]
    return None


def _family(name: str) -> Optional[Tuple[str, str]]:
    for naming, pattern, sep in _FAMILIES:
        if pattern.match(name):
            return naming, sep
    return None


def select_modalities(naming: str,
                      modalities: Optional[Sequence[str]] = None
                      ) -> Tuple[str, ...]:
    """The file tags to use: all (physical order) or the chosen subset.

    ``modalities`` may use the family's tags (``'t1ce'``) or the physical
    names of :data:`MODALITIES` (``'T1ce'``); the chosen order is kept.
    """
    tags = MODALITY_NAMES[naming]
    if modalities is None:
        return tags
    if isinstance(modalities, str) or not len(modalities):
        raise ValueError('`modalities` should be a non-empty sequence of '
                         f'{tags} or {MODALITIES}, but got {modalities!r}')
    out = []
    for m in modalities:
        if m in tags:
            out.append(m)
        elif m in MODALITIES:
            out.append(tags[MODALITIES.index(m)])
        else:
            raise ValueError(f'`modalities` should hold names of {tags} '
                             f'(or {MODALITIES}), but got {m!r}')
    if len(set(out)) != len(out):
        raise ValueError(f'`modalities` should not repeat a modality, but '
                         f'got {modalities!r}')
    return tuple(out)


def _find_case(case_dir: str, case_id: str, naming: str, sep: str,
               label_scheme: str) -> BraTSCase:
    files = {}
    for name in sorted(os.listdir(case_dir)):
        stem = _nifti_stem(name)
        if stem is not None and osp.isfile(osp.join(case_dir, name)):
            # `.nii.gz` sorts before `.nii`; keep the first of a pair.
            files.setdefault(stem, name)
    tags = MODALITY_NAMES[naming]
    used = set()
    images = []
    for tag in tags:
        stem = f'{case_id}{sep}{tag}'
        images.append(osp.join(case_dir, files[stem])
                      if stem in files else None)
        used.add(stem)
    seg_stem = f'{case_id}{sep}seg'
    used.add(seg_stem)
    seg = None
    if seg_stem in files:
        seg = osp.join(case_dir, files[seg_stem])
    else:
        others = [files[s] for s in files if s not in used]
        named = [n for n in others if 'segm' in n.lower()]
        pick = named if named else others
        if len(pick) > 1:
            raise InputError(
                path=case_dir, where=f'case {case_id!r}',
                reason='no label file and several other NIfTI files',
                value=sorted(pick),
                expected=f'{seg_stem}.nii(.gz) or a single *Segm*.nii(.gz)')
        if pick:
            seg = osp.join(case_dir, pick[0])
    return BraTSCase(case_id, case_dir, naming, label_scheme, tags,
                     tuple(images), seg)


def find_brats_cases(root: str,
                     label_scheme: Optional[str] = None) -> List[BraTSCase]:
    """The BraTS cases under ``root``, sorted by case id.

    Args:
        root (str): The folder holding one sub-folder per case. Other
            entries are ignored.
        label_scheme (str, optional): ``'brats2020'`` or ``'brats2023'``.
            Defaults to None (from the names: see the module docstring).

    Returns:
        list[BraTSCase]: Cases; a missing modality is a None in
        ``images``, an unlabelled case has ``seg=None``.

    Raises:
        InputError: ``root`` is not a folder, holds no BraTS case, mixes
            the two naming families, or a case folder has an ambiguous
            label file.
        ValueError: an unknown ``label_scheme``.

    Examples:
        >>> cases = find_brats_cases('data/BraTS2020_TrainingData')
        >>> cases[0].case_id, cases[0].modalities
        ('BraTS20_Training_001', ('flair', 't1', 't1ce', 't2'))
    """
    if label_scheme is not None:
        check_label_scheme(label_scheme)
    if not osp.isdir(root):
        raise InputError(path=root, reason='BraTS root',
                         value='not a folder',
                         expected='a folder of case folders')
    cases = []
    for name in sorted(os.listdir(root)):
        case_dir = osp.join(root, name)
        family = _family(name)
        if family is None or not osp.isdir(case_dir):
            continue
        naming, sep = family
        cases.append(
            _find_case(case_dir, name, naming, sep, label_scheme or naming))
    if not cases:
        raise InputError(
            path=root, reason='BraTS root', value='no case folder',
            expected='folders named like BraTS20_Training_001, '
            'BraTS2021_00000 or BraTS-GLI-00000-000')
    namings = sorted({c.naming for c in cases})
    if len(namings) > 1:
        raise InputError(
            path=root, reason='mixed BraTS naming families', value=namings,
            expected='one family per root (2020/2021 or 2023): '
            'split the folders')
    return cases
