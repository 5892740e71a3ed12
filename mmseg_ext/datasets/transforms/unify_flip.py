# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Flip chosen samples horizontally at load, and flip outputs back.

A dataset that unifies an orientation (e.g. ``HandBoneDataset(unify_hands=
True)`` turns every left hand into a right one) sets ``unify_flip=True`` in
the data info of each sample to flip. :func:`insert_unify_flip` puts a
:class:`UnifyFlip` right after every loading transform of the pipeline, so
the image and every label map are flipped at their own loaded size, before
any other transform (the test pipelines resize the image *before* loading
the label; both end up flipped). ``unify_flip`` travels in the sample's
metainfo (a default meta key of :class:`PackMultiLabelSegInputs`), and
``MultiLabelEncoderDecoder.postprocess_result`` flips ``seg_logits``,
``pred_sem_seg`` and ``gt_sem_seg`` back: everything a model returns, and
so everything written to disk, is in the original orientation
(:func:`unflip_array` does the same for arrays).
"""
from typing import List, Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

__all__ = ['UnifyFlip', 'insert_unify_flip', 'unflip_array', 'UNIFY_KEY']

#: Data-info / metainfo key: True when the sample was flipped at load.
UNIFY_KEY = 'unify_flip'
_DONE_KEY = 'unify_flipped_keys'


@TRANSFORMS.register_module()
class UnifyFlip(BaseTransform):
    """Flip ``img`` and the seg maps horizontally if ``unify_flip`` is set.

    Each key is flipped once (the keys done are kept in
    ``results['unify_flipped_keys']``), so one instance after each loading
    transform flips what that loader added. Samples without
    ``unify_flip=True`` pass unchanged. Uses ``mmcv.imflip``, as MMSeg's
    ``RandomFlip``; packed multi-label maps flip exactly (pixels move,
    values do not change).

    Required Keys:

    - unify_flip (bool, optional): from the data info.
    - img (np.ndarray, optional)
    - gt_seg_map, seg_fields (optional)

    Modified Keys:

    - img, the maps of ``seg_fields`` and ``gt_seg_map`` (flipped)
    - unify_flipped_keys (list[str])

    Examples:
        >>> t = UnifyFlip()
        >>> r = t(dict(img=np.arange(3)[None], unify_flip=True))
        >>> r['img'].tolist()
        [[2, 1, 0]]
    """

    def transform(self, results: dict) -> dict:
        """Flip the loaded arrays not flipped yet; see the class docstring."""
        if not results.get(UNIFY_KEY, False):
            return results
        done = results.setdefault(_DONE_KEY, [])
        keys = ['img'] + list(results.get('seg_fields', []))
        if 'gt_seg_map' not in keys:
            keys.append('gt_seg_map')
        for key in keys:
            if key in done or results.get(key) is None:
                continue
            results[key] = mmcv.imflip(results[key], direction='horizontal')
            done.append(key)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'


def _transform_type(t) -> str:
    return t.get('type', '') if isinstance(t, dict) else type(t).__name__


def _is_loader(t) -> bool:
    name = _transform_type(t)
    return isinstance(name, str) and name.startswith('Load')


_PACKERS = ('PackSegInputs', 'PackMultiLabelSegInputs')


def _with_meta_key(t):
    """A packing transform that carries ``unify_flip`` in the metainfo."""
    if _transform_type(t) not in _PACKERS:
        return t
    if isinstance(t, dict):
        keys = t.get('meta_keys')
        if keys is None and t.get('type') == 'PackSegInputs':
            from mmseg.datasets.transforms import PackSegInputs
            keys = PackSegInputs().meta_keys
        if keys is not None and UNIFY_KEY not in keys:
            t = dict(t, meta_keys=tuple(keys) + (UNIFY_KEY, ))
        return t
    if UNIFY_KEY not in t.meta_keys:  # a built transform
        t.meta_keys = tuple(t.meta_keys) + (UNIFY_KEY, )
    return t


def _insert(pipeline: Sequence) -> List:
    out = []
    for t in pipeline:
        if isinstance(t, dict) and t.get('type') == 'TestTimeAug':
            t = dict(t, transforms=[_insert(alternatives)
                                    for alternatives in t['transforms']])
        out.append(_with_meta_key(t))
        if _is_loader(t):
            out.append(dict(type='UnifyFlip'))
    return out


def _has_unify(pipeline) -> bool:
    for t in pipeline:
        if _transform_type(t) == 'UnifyFlip':
            return True
        if isinstance(t, dict) and t.get('type') == 'TestTimeAug' and any(
                _has_unify(a) for a in t['transforms']):
            return True
    return False


def insert_unify_flip(pipeline: Sequence) -> List:
    """``pipeline`` with a :class:`UnifyFlip` after every ``Load*``
    transform (configs or built transforms, also inside ``TestTimeAug``),
    and ``unify_flip`` added to the ``meta_keys`` of ``PackSegInputs`` /
    ``PackMultiLabelSegInputs`` that lack it (so the segmentor can flip the
    outputs back). No ``UnifyFlip`` is added if the pipeline has one (the
    user placed it).

    Examples:
        >>> insert_unify_flip([dict(type='LoadImageFromFile'),
        ...                    dict(type='Resize', scale=(8, 8))])
        [{'type': 'LoadImageFromFile'}, {'type': 'UnifyFlip'}, \
{'type': 'Resize', 'scale': (8, 8)}]
    """
    pipeline = list(pipeline or [])
    if _has_unify(pipeline):
        return [_with_meta_key(t) for t in pipeline]
    return _insert(pipeline)


def unflip_array(array, metainfo: dict):
    """``array`` flipped back along its last axis (width) if ``metainfo``
    says the sample was flipped at load (``unify_flip``), else itself.

    Args:
        array (np.ndarray | torch.Tensor): ``(..., H, W)``.
        metainfo (dict): The sample's metainfo.
    """
    if not metainfo.get(UNIFY_KEY, False):
        return array
    if isinstance(array, np.ndarray):
        return np.ascontiguousarray(array[..., ::-1])
    return array.flip(-1)
