# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Report dicts of the BraTS report format (BRATS_CONTRACT.md, section 3)
for the database tests; the tests load it by its path (importlib), so no
other ``conftest`` or module of the same name can shadow it."""


def make_region(voxels, hemisphere='left', atlas=True, offset=0.0):
    """A REGION of the report format; empty when ``voxels`` is 0."""
    if not voxels:
        return dict(voxels=0, volume_cm3=0.0, components=0,
                    centroid_voxel=None, centroid_world=None,
                    bbox_voxel=None, hemisphere=None, atlas=None)
    return dict(
        voxels=voxels, volume_cm3=voxels / 1000.0, components=2,
        centroid_voxel=[10.5 + offset, 20.25, 30.0],
        centroid_world=[-10.5 - offset, 219.75, 30.0],
        bbox_voxel=[[1, 2, 3], [20, 40, 60]], hemisphere=hemisphere,
        atlas=[dict(label=1, name='left frontal', fraction=0.75),
               dict(label=3, name='left temporal', fraction=0.25)]
        if atlas else None)


def make_report(case_id, dice=0.8, hd95=2.5, metrics=True, et=True,
                hemisphere='left', atlas=True):
    """A valid report dict of the contract (BRATS_CONTRACT.md, section 3)."""
    return dict(
        case_id=case_id, shape=[240, 240, 155], spacing=[1.0, 1.0, 1.2],
        affine=[[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 239.0],
                [0.0, 0.0, 1.2, 0.0], [0.0, 0.0, 0.0, 1.0]],
        label_scheme='brats2020', source='prediction',
        metrics=dict(WT=dict(dice=dice, hd95=hd95),
                     TC=dict(dice=dice / 2, hd95=None),
                     ET=dict(dice=1.0, hd95=0.0)) if metrics else None,
        regions=dict(WT=make_region(5000, hemisphere, atlas),
                     TC=make_region(1200, hemisphere, atlas, 1.0),
                     ET=make_region(300 if et else 0, hemisphere, atlas,
                                    2.0)))
