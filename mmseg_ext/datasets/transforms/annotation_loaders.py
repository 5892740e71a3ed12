# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The annotation-loading transforms, and dropping them for unlabelled data.

Test images have no labels, so tools that run a config's pipeline on the
test split (``tools/ensemble.py``, ``tools/hand_bone_submission.py``,
``tools/roi_specialist.py``) remove these transforms first.
"""
from typing import List, Sequence, Tuple

__all__ = ['ANNOTATION_LOADERS', 'drop_annotation_loading']

#: Transform types that load a ground-truth map (MMSeg's and ours).
ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadMultiLabelAnnotations')


def drop_annotation_loading(pipeline: Sequence[dict]) -> Tuple[List, int]:
    """The pipeline without :data:`ANNOTATION_LOADERS`.

    Args:
        pipeline (Sequence[dict]): Transform configs.

    Returns:
        tuple[list[dict], int]: The kept transforms and how many were
        dropped.

    Examples:
        >>> drop_annotation_loading([dict(type='LoadImageFromFile'),
        ...                          dict(type='LoadAnnotations')])
        ([{'type': 'LoadImageFromFile'}], 1)
    """
    pipeline = list(pipeline or [])
    kept = [t for t in pipeline if t.get('type') not in ANNOTATION_LOADERS]
    return kept, len(pipeline) - len(kept)
