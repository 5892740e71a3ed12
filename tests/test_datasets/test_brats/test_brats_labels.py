# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Labels ↔ regions WT / TC / ET on hand-built volumes, both schemes."""
import numpy as np
import pytest

from mmseg_ext.datasets.brats import (REGIONS, labels_to_regions,
                                      nest_regions, regions_to_labels,
                                      scheme_labels)
from mmseg_ext.utils.errors import InputError

# label → (WT, TC, ET)
CASES = {
    'brats2020': {0: (0, 0, 0), 1: (1, 1, 0), 2: (1, 0, 0), 4: (1, 1, 1)},
    'brats2023': {0: (0, 0, 0), 1: (1, 1, 0), 2: (1, 0, 0), 3: (1, 1, 1)},
}


@pytest.mark.parametrize('scheme', sorted(CASES))
def test_labels_regions_both_ways(scheme):
    assert REGIONS == ('WT', 'TC', 'ET')
    table = CASES[scheme]
    assert scheme_labels(scheme) == tuple(sorted(table))
    label = np.array([[v for v in table]], np.uint8)  # (1, 4)
    regions = labels_to_regions(label, scheme)
    assert regions.shape == (3, 1, 4) and regions.dtype == bool
    expected = np.array([table[v] for v in table], bool).T[:, None]
    np.testing.assert_array_equal(regions, expected)
    np.testing.assert_array_equal(regions_to_labels(regions, scheme), label)


@pytest.mark.parametrize('scheme,bad', [('brats2020', 3), ('brats2023', 4)])
def test_other_scheme_label_is_an_error(scheme, bad):
    with pytest.raises(InputError, match='other label scheme'):
        labels_to_regions(np.array([0, 1, bad]), scheme, path='x_seg.nii')


@pytest.mark.parametrize('scheme', sorted(CASES))
def test_nest_regions_are_the_regions_of_the_painted_labels(scheme):
    """All 8 on/off combinations of independent sigmoids, e.g. TC without
    WT: the written label volume counts the voxel in WT too."""
    combos = np.array([[(k >> r) & 1 for k in range(8)] for r in range(3)],
                      bool)[:, None]  # (3, 1, 8)
    painted = labels_to_regions(regions_to_labels(combos, scheme), scheme)
    nested = nest_regions(combos.copy())
    np.testing.assert_array_equal(nested, painted)
    # by hand: WT = any, TC = TC or ET, ET = ET
    np.testing.assert_array_equal(nested[0, 0], combos.any(0)[0])
    np.testing.assert_array_equal(nested[1, 0], (combos[1] | combos[2])[0])
    np.testing.assert_array_equal(nested[2], combos[2])
    with pytest.raises(ValueError, match='bool'):
        nest_regions(combos.astype(np.uint8))
