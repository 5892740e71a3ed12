# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS label schemes and the overlapping regions WT / TC / ET.

Region order is fixed: ``REGIONS = ('WT', 'TC', 'ET')`` (whole tumour,
tumour core, enhancing tumour; ET ⊂ TC ⊂ WT). MONAI's
``ConvertToMultiChannelBasedOnBratsClasses`` uses ``[TC, WT, ET]`` and a
hard-coded label 4 (BraTS 2020); both are traps for BraTS 2023, whose
enhancing tumour is label 3.

============  ===========================  ======================
scheme        labels                       regions
============  ===========================  ======================
brats2020     1 NCR/NET, 2 ED, 4 ET        WT {1,2,4} TC {1,4} ET {4}
brats2023     1 NETC, 2 SNFH, 3 ET         WT {1,2,3} TC {1,3} ET {3}
============  ===========================  ======================

Regions back to labels follow nnU-Net's region-based rule: paint WT as
the edema label, then TC as the necrosis label, then ET as the enhancing
label, so a voxel takes the label of the innermost region that claims it
(an ET voxel outside the predicted TC still becomes ET).
"""
from typing import Dict, Sequence, Tuple

import numpy as np

from mmseg_ext.utils.errors import InputError

__all__ = [
    'REGIONS', 'LABEL_SCHEMES', 'check_label_scheme', 'scheme_labels',
    'labels_to_regions', 'regions_to_labels', 'nest_regions', 'region_labels'
]

REGIONS: Tuple[str, ...] = ('WT', 'TC', 'ET')

#: Per scheme: the label of each tissue class, and each region's labels.
LABEL_SCHEMES: Dict[str, dict] = {
    'brats2020': dict(
        names={1: 'NCR/NET', 2: 'ED', 4: 'ET'},
        paint=(('WT', 2), ('TC', 1), ('ET', 4)),
        regions={'WT': (1, 2, 4), 'TC': (1, 4), 'ET': (4, )}),
    'brats2023': dict(
        names={1: 'NETC', 2: 'SNFH', 3: 'ET'},
        paint=(('WT', 2), ('TC', 1), ('ET', 3)),
        regions={'WT': (1, 2, 3), 'TC': (1, 3), 'ET': (3, )}),
}


def check_label_scheme(label_scheme: str) -> dict:
    """The scheme's table; ``ValueError`` naming the known schemes."""
    if label_scheme not in LABEL_SCHEMES:
        raise ValueError(f'`label_scheme` should be one of '
                         f'{sorted(LABEL_SCHEMES)}, but got {label_scheme!r}')
    return LABEL_SCHEMES[label_scheme]


def scheme_labels(label_scheme: str) -> Tuple[int, ...]:
    """The valid label values of a scheme, background 0 included."""
    return (0, ) + tuple(sorted(check_label_scheme(label_scheme)['names']))


def labels_to_regions(label: np.ndarray,
                      label_scheme: str = 'brats2020',
                      path: str = None) -> np.ndarray:
    """``(...)`` label volume → ``(3, ...)`` bool regions ``WT, TC, ET``.

    Args:
        label (np.ndarray): Integer labels of the scheme.
        label_scheme (str): ``'brats2020'`` or ``'brats2023'``.
        path (str, optional): The file, for the error message.

    Raises:
        InputError: for a value the scheme does not have (e.g. 3 in a
            BraTS 2020 label, 4 in a BraTS 2023 one).
    """
    table = check_label_scheme(label_scheme)
    label = np.asarray(label)
    if label.dtype.kind == 'f':
        if not np.all(np.isfinite(label)) or \
                not np.array_equal(label, np.round(label)):
            raise InputError(path=path, reason='label volume',
                             value='non-integer values',
                             expected='integer labels '
                             f'{scheme_labels(label_scheme)}')
        label = label.astype(np.int64)
    valid = scheme_labels(label_scheme)
    present = np.unique(label)
    bad = [int(v) for v in present if int(v) not in valid]
    if bad:
        raise InputError(
            path=path, reason=f'label values for {label_scheme!r}',
            value=bad, expected=f'only {list(valid)} '
            f'({table["names"]}); is it the other label scheme?')
    return np.stack([np.isin(label, table['regions'][r]) for r in REGIONS])


def regions_to_labels(regions: np.ndarray,
                      label_scheme: str = 'brats2020',
                      dtype=np.uint8) -> np.ndarray:
    """``(3, ...)`` regions ``WT, TC, ET`` (bool or 0/1) → label volume.

    nnU-Net's rule: WT painted as edema, then TC as necrosis, then ET as
    enhancing, each over the last.
    """
    table = check_label_scheme(label_scheme)
    regions = np.asarray(regions)
    if regions.ndim < 1 or regions.shape[0] != len(REGIONS):
        raise ValueError(f'`regions` should be (3, ...) in the order '
                         f'{REGIONS}, but got shape {regions.shape}')
    out = np.zeros(regions.shape[1:], dtype)
    for name, value in table['paint']:
        out[regions[REGIONS.index(name)] != 0] = value
    return out


def nest_regions(regions: np.ndarray) -> np.ndarray:
    """Make ``(3, ...)`` region masks ``WT, TC, ET`` nested, in place:
    ``TC |= ET``, then ``WT |= TC``.

    Independent sigmoids may fire for TC (or ET) where WT does not; the
    label volume :func:`regions_to_labels` paints from them (what a BraTS
    submission holds) counts such voxels in every enclosing region. The
    nested masks are exactly the regions of that label volume
    (``labels_to_regions(regions_to_labels(r)) == nest_regions(r)`` for
    both schemes), so metrics and reports computed on them describe the
    file that is written.

    Returns:
        np.ndarray: ``regions`` (bool), modified in place.
    """
    regions = np.asarray(regions)
    if regions.dtype != bool or regions.ndim < 1 or \
            regions.shape[0] != len(REGIONS):
        raise ValueError('`regions` should be a bool (3, ...) array in the '
                         f'order {REGIONS}, but got {regions.dtype} '
                         f'{regions.shape}')
    np.logical_or(regions[1], regions[2], out=regions[1])
    np.logical_or(regions[0], regions[1], out=regions[0])
    return regions


def region_labels(label_scheme: str) -> Dict[str, Sequence[int]]:
    """``{region: labels}`` of a scheme."""
    return dict(check_label_scheme(label_scheme)['regions'])
