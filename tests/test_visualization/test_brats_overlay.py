# Copyright (c) mmseg_ext contributors. All rights reserved.
import os

import cv2
import numpy as np
import pytest

from mmseg_ext.visualization.brats_overlay import (REGION_COLORS,
                                                   draw_brats_slice,
                                                   overlay_slices,
                                                   write_brats_overlays)


def _volume():
    reg = np.zeros((3, 16, 12, 8), bool)
    reg[0, 2:10, 2:8, 1] = True  # 48
    reg[0, 2:6, 2:6, 3] = True  # 16
    reg[0, 2:12, 2:10, 5] = True  # 80
    reg[1, 3:7, 3:7, 5] = True
    reg[2, 4:6, 4:6, 5] = True
    return reg


def test_overlay_slices_largest_area_plus_user():
    reg = _volume()
    assert overlay_slices(reg, num_largest=2) == [1, 5]
    assert overlay_slices(reg, num_largest=2, slices=[0, -1, 5]) == [0, 1,
                                                                     5, 7]
    # ground truth counts too: slice 3 becomes the largest with it
    gt = np.zeros_like(reg)
    gt[0, :, :, 3] = True
    assert overlay_slices(reg, gt, num_largest=1) == [3]
    # never a slice without tumour
    assert overlay_slices(reg, num_largest=10) == [1, 3, 5]
    with pytest.raises(ValueError, match='outside the volume of 8'):
        overlay_slices(reg, slices=[8])


def test_draw_colours_and_panels():
    reg = _volume()[..., 5]
    image = np.random.default_rng(0).random((16, 12)).astype(np.float32) + 1
    one = draw_brats_slice(image, reg, scale=2)
    assert one.shape == (18 + 32, 24, 3)
    two = draw_brats_slice(image, reg, reg, scale=1)
    assert two.shape == (18 + 16, 24, 3)
    body = one[18:]
    for k, color in enumerate(REGION_COLORS):
        hit = np.all(body == color, axis=-1)
        assert hit.any(), k
    # ET outline at the ET box edge, WT outline at the WT box corner
    assert tuple(body[8, 8]) == REGION_COLORS[2]
    assert tuple(body[4, 4]) == REGION_COLORS[0]


def test_write_overlays(tmp_path):
    reg = _volume()
    image = np.ones((16, 12, 8), np.float32)
    paths = write_brats_overlays(str(tmp_path), 'c1', image, reg, reg,
                                 num_largest=1, slices=[2], scale=1)
    assert sorted(os.listdir(tmp_path)) == ['c1_z002.png', 'c1_z005.png']
    assert [os.path.basename(p) for p in paths] == ['c1_z002.png',
                                                    'c1_z005.png']
    png = cv2.imread(paths[1])[..., ::-1]
    assert png.shape == (18 + 16, 24, 3)
    assert tuple(png[18 + 4, 12 + 4]) == REGION_COLORS[2]  # prediction panel
