# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Fuzzing ``LoadMultiLabelAnnotations``: packed labels with random bits
flipped and images of other sizes load unchanged exactly when a
pure-Python reference of the layout says they are valid, else raise
InputError naming the file; never another exception."""
import os.path as osp
import tempfile

import numpy as np
import pytest

from mmseg_ext.datasets.transforms import LoadMultiLabelAnnotations
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.multilabel import pack_multilabel, write_packed_label

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, derandomize=True)


def ref_allowed(num_classes):
    """``{(channel, bit)}`` a packed label of ``C`` classes may set:
    class ``k`` at ``(k // 16, k % 16)``, the valid bit at bit 15 of the
    last of ``ceil((C + 1) / 16)`` channels."""
    k = (num_classes + 16) // 16
    return {(c // 16, c % 16) for c in range(num_classes)} | {(k - 1, 15)}


@FUZZ
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 6),
       st.integers(0, 2**32 - 1),
       st.lists(st.tuples(st.integers(0, 35), st.integers(0, 35),
                          st.integers(0, 3), st.integers(0, 15)),
                max_size=2),
       st.sampled_from([(0, 0), (0, 0), (1, 0), (0, -1)]))
def test_packed_label_loads_or_raises(num_classes, h, w, seed, flips, grow):
    rng = np.random.default_rng(seed)
    masks = rng.random((num_classes, h, w)) < 0.3
    packed = pack_multilabel(masks, rng.random((h, w)) < 0.1)
    k = packed.shape[-1]
    for y, x, c, b in flips:
        packed[y % h, x % w, c % k] ^= np.uint16(1 << b)
    allowed = ref_allowed(num_classes)
    bad_bits = any(
        int(packed[y, x, c]) >> b & 1 and (c, b) not in allowed
        for y in range(h) for x in range(w) for c in range(k)
        for b in range(16))
    image_shape = (h + grow[0], max(w + grow[1], 1), 3)
    bad_size = image_shape[:2] != (h, w)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'label.png')
        write_packed_label(path, packed)
        results = dict(seg_map_path=path, img_path='img.png',
                       ori_shape=image_shape[:2], seg_fields=[])
        if bad_bits or bad_size:
            with pytest.raises(InputError) as err:
                LoadMultiLabelAnnotations(num_classes)(results)
            assert err.value.path == path
            if bad_size:
                assert 'img.png' in str(err.value)
        else:
            out = LoadMultiLabelAnnotations(num_classes)(results)
            np.testing.assert_array_equal(out['gt_seg_map'][..., :k],
                                          packed)
            assert not out['gt_seg_map'][..., k:].any()
