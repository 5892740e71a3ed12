# Copyright (c) mmseg_ext contributors. All rights reserved.
"""One model's saved predictions or probabilities on disk, read image by
image for :mod:`mmseg_ext.apis.analyze_predictions` (split from it; it
re-exports :class:`PredictionDir` and :class:`PredictionInputError`).
"""
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np

from mmseg_ext.utils.errors import InputError


__all__ = ['PredictionInputError', 'PredictionDir']


class PredictionInputError(InputError):
    """Predictions or ground truth that cannot be analysed (names the model
    or folder, the file and what is wrong)."""


def _walk(folder: str, suffixes: Sequence[str]) -> Dict[str, str]:
    """``{stem: path}`` of the files under ``folder`` ending in one of
    ``suffixes``; a stem found twice is an error."""
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        for name in sorted(files):
            if name.startswith('.'):
                continue
            suffix = next((s for s in suffixes if name.endswith(s)), None)
            if suffix is None:
                continue
            stem = name[:-len(suffix)]
            path = osp.join(root, name)
            if stem in out:
                raise PredictionInputError(
                    path=path, reason=f'the image {stem!r} is also at '
                    f'{out[stem]}', expected='one file per image stem')
            out[stem] = path
    return out


class PredictionDir:
    """One model's saved outputs: ``{stem}.npy`` probabilities or
    ``{stem}.png`` masks (not both), searched recursively.

    Args:
        folder (str): The folder.
        name (str, optional): The model's name. Defaults to the folder
            name.

    Raises:
        PredictionInputError: for a missing folder, no ``.npy`` / ``.png``
            file, or both kinds.
    """

    def __init__(self, folder: str, name: Optional[str] = None) -> None:
        self.folder = folder
        self.name = name or osp.basename(osp.normpath(folder))
        if not osp.isdir(folder):
            raise PredictionInputError(
                f'model {self.name!r}: prediction folder {folder!r} does not '
                'exist', path=folder)
        probs, masks = _walk(folder, ('.npy', )), _walk(folder, ('.png', ))
        if probs and masks:
            raise PredictionInputError(
                f'model {self.name!r}: {folder} holds both .npy '
                'probabilities and .png masks; give one kind per folder',
                path=folder)
        if not probs and not masks:
            raise PredictionInputError(
                f'model {self.name!r}: {folder} has no {{stem}}.npy '
                '(--save-probs) or {stem}.png (--save-pred-dir) file',
                path=folder)
        self.kind = 'probs' if probs else 'masks'
        self.paths = probs or masks

    def num_classes(self) -> Optional[int]:
        """``C`` of the first probability file (None for masks)."""
        if self.kind != 'probs':
            return None
        from .ensemble.formats import probs_shape
        return probs_shape(next(iter(self.paths.values())))[0]

    def masks(self, stem: str, num_classes: int, decision: str,
              threshold: float, packed: bool) -> np.ndarray:
        """``(C, H, W)`` uint8 0/1 masks of one image.

        Args:
            stem (str): The image.
            num_classes (int): ``C``.
            decision (str): ``'argmax'`` or ``'threshold'``
                (probabilities).
            threshold (float): Of ``'threshold'``: ``p > threshold``.
            packed (bool): ``.png`` masks are packed multi-label PNGs
                (``C > 1`` multi-label); else label maps (``C == 1``: any
                nonzero pixel is positive).
        """
        path = self.paths[stem]
        try:
            if self.kind == 'probs':
                from mmseg_ext.utils.ensemble import dequantize_probs

                from .ensemble.formats import load_probs
                probs = load_probs(path, num_classes)
                if decision == 'argmax':
                    label = probs.argmax(0)
                    return (label[None] == np.arange(num_classes).reshape(
                        -1, 1, 1)).astype(np.uint8)
                return (dequantize_probs(probs) > threshold).astype(np.uint8)
            if packed and num_classes > 1:
                from mmseg_ext.utils.multilabel import (read_packed_label,
                                                        unpack_multilabel)
                return (unpack_multilabel(
                    read_packed_label(path, num_classes), num_classes) ==
                        1).astype(np.uint8)
            import cv2

            from .ensemble.members import label_to_targets
            label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if label is None or label.ndim != 2:
                raise PredictionInputError(
                    path=path, value=None if label is None else label.shape,
                    expected='a single-channel label PNG (H, W)')
            if num_classes == 1:
                return (label > 0)[None].astype(np.uint8)
            if label.max() >= num_classes:
                raise PredictionInputError(
                    path=path, value=int(label.max()),
                    expected=f'class indices < C={num_classes}')
            return label_to_targets(label, num_classes, None)
        except PredictionInputError:
            raise
        except (InputError, ValueError) as err:
            raise PredictionInputError(f'model {self.name!r}: {err}',
                                       path=path) from None
