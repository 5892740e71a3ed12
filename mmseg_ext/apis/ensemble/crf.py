# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Dense CRF as an option of the ensemble (``tools/ensemble.py --crf``).

Validation (:func:`~.search.ensemble_val` with ``crf=True``): every
image's merged ``(C, H, W)`` map is refined per class with the dense CRF of
:mod:`mmseg_ext.utils.dense_crf` on the image's grey levels, and the class
keeps the CRF only where it raises the mean per-image Dice at the class's
searched threshold (:func:`~mmseg_ext.utils.postprocess.choose_postprocess`,
the rule of the connected-component plan). ``thresholds.json`` stores the
kept classes and the kernel parameters under ``"crf"``; a file without the
key means no CRF. Test (:func:`~.writers.ensemble_test`): the kept classes
are refined before thresholding (``use_crf=False``, ``--no-crf``: not).

The image: the ``img_path`` of the first model member's sample, else
``{img_dir}/{stem}{img_suffix}``, or the one file of that name in its
subfolders (``--img-dir`` for ``--prob-dirs`` members; hand-bone images
are ``DCM/{ID}/{name}.png``), read grey with mmcv and resized (bilinear)
to the probabilities' ``(H, W)`` (the original image size for model
members) if it differs.
"""
import os
import os.path as osp
import time
from functools import lru_cache
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from mmseg_ext.utils.dense_crf import (DEFAULT_CRF_PARAMS, dense_crf,
                                       import_densecrf)
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.postprocess import choose_postprocess, dice_per_class

__all__ = [
    'CRFUnavailableError', 'require_crf', 'check_crf_params', 'item_image',
    'crf_val_sums', 'choose_crf', 'CRFRefiner', 'crf_refiner'
]


class CRFUnavailableError(InputError):
    """``--crf`` without the optional package ``pydensecrf2``."""


def require_crf() -> None:
    """Fail at once (one line) if ``pydensecrf`` cannot be imported.

    Raises:
        CRFUnavailableError: saying ``pip install pydensecrf2``.
    """
    try:
        import_densecrf()
    except ImportError as err:
        raise CRFUnavailableError(
            "dense-CRF post-processing (--crf) needs the optional package "
            "'pydensecrf2' (imported as pydensecrf): pip install "
            'pydensecrf2 (builds from source: needs a C++ compiler), or '
            f'run without --crf / with --no-crf; got: {err}') from err


def check_crf_params(params: Optional[Dict] = None,
                     source: str = '`crf_params`') -> Dict:
    """:data:`DEFAULT_CRF_PARAMS` updated with ``params``, checked.

    Raises:
        ValueError: for a key that is not a CRF parameter or a value that
            is not a positive number (``iterations``: a positive int).
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULT_CRF_PARAMS))
    if unknown:
        raise ValueError(f'{source} should only set '
                         f'{sorted(DEFAULT_CRF_PARAMS)}, but got {unknown}')
    out = dict(DEFAULT_CRF_PARAMS, **params)
    for key, value in out.items():
        number = isinstance(value, (int, float)) and \
            not isinstance(value, bool)
        if not number or not value > 0 or (key == 'iterations'
                                           and value != int(value)):
            raise ValueError(f'{source}: {key!r} should be a positive '
                             f'number, but got {value!r}')
    out['iterations'] = int(out['iterations'])
    return out


@lru_cache(maxsize=4)
def _image_index(img_dir: str) -> Dict[str, list]:
    """``{file name: [paths]}`` of every file under ``img_dir``."""
    index = {}
    for root, _, names in os.walk(img_dir):
        for name in names:
            index.setdefault(name, []).append(osp.join(root, name))
    return index


def _find_image(img_dir: str, name: str) -> str:
    """``{img_dir}/{name}``, else the one ``name`` in its subfolders."""
    path = osp.join(img_dir, name)
    if osp.isfile(path):
        return path
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'--img-dir {img_dir!r} (images for the '
                                'dense CRF) does not exist')
    found = _image_index(osp.abspath(img_dir)).get(name)
    if found is None:  # walked before the file came: walk again
        _image_index.cache_clear()
        found = _image_index(osp.abspath(img_dir)).get(name, [])
    if len(found) > 1:
        raise ValueError(f'--img-dir {img_dir!r} holds {len(found)} images '
                         f'named {name!r} ({found[:2]}); the dense CRF '
                         'needs one per probability file')
    return found[0] if found else path


def item_image(item,
               shape: Tuple[int, int],
               img_dir: Optional[str] = None) -> np.ndarray:
    """The grey ``(H, W)`` uint8 image of an :class:`~.merge.EnsembleItem`
    at the probabilities' size ``shape``.

    Raises:
        ValueError: if the item has no image path and no ``img_dir`` is
            given (probability folders only).
        FileNotFoundError: if the image does not exist.
    """
    import mmcv
    path = getattr(item, 'img_path', None)
    if img_dir is not None and path is None:
        path = _find_image(img_dir, item.name)
    if path is None:
        raise ValueError('the dense CRF needs the images: with only '
                         '--prob-dirs members give --img-dir DIR '
                         '(DIR/{stem}{--img-suffix})')
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path!r} (for the dense CRF) does '
                                'not exist')
    grey = mmcv.imread(path, flag='grayscale')
    h, w = shape
    if grey.shape[:2] != (h, w):
        grey = mmcv.imresize(grey, (w, h), interpolation='bilinear')
    return np.ascontiguousarray(grey, np.uint8)


def crf_val_sums(samples: Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray]],
                 thresholds: np.ndarray,
                 params: Dict,
                 on_masks=None) -> Tuple[Optional[np.ndarray], int, float]:
    """Per-image Dice sums without / with CRF at per-class thresholds.

    Args:
        samples: ``(merged (C, H, W) float, grey (H, W), targets (C, H,
            W))`` per image.
        thresholds (np.ndarray): ``(C,)`` thresholds of both.
        params (dict): CRF parameters (:func:`check_crf_params`).
        on_masks (callable, optional): Called with the index of the sample
            and its ``(C, H, W)`` uint8 masks after CRF (cached for the
            post-processing pass). Defaults to None.

    Returns:
        tuple: ``(2, C)`` sums (row 0 without, row 1 with CRF; None without
        images), the number of images and the seconds of CRF (all classes,
        summed over images); sums of shards add up.
    """
    thr = np.asarray(thresholds, np.float32).reshape(-1, 1, 1)
    sums, num, seconds = None, 0, 0.0
    for i, (merged, grey, targets) in enumerate(samples):
        start = time.perf_counter()
        refined = dense_crf(merged, grey, **params)
        seconds += time.perf_counter() - start
        masks = (refined > thr).astype(np.uint8)
        both = np.stack([
            dice_per_class(merged > thr, targets),
            dice_per_class(masks, targets)
        ])
        sums = both if sums is None else sums + both
        num += 1
        if on_masks is not None:
            on_masks(i, masks)
    return sums, num, seconds


def choose_crf(sums: np.ndarray,
               num: int,
               seconds: float,
               classes: Sequence[str],
               params: Dict,
               min_gain: float = 0.0) -> Tuple[Dict, Dict]:
    """The ``"crf"`` and ``"crf_report"`` entries of ``thresholds.json``.

    Returns:
        tuple[dict, dict]: ``{'classes': kept names, 'params': params}``
        and ``{'dice': {class: {'none': d, 'crf': d}},
        'seconds_per_image': s (all C classes), 'seconds_per_image_kept':
        s (the kept ones, estimated)}``.
    """
    plan, dice = choose_postprocess(sums, num, classes, [('crf', )], min_gain)
    kept = [c for c in classes if c in plan]
    per_image = float(seconds) / num
    report = dict(dice=dice,
                  seconds_per_image=round(per_image, 4),
                  seconds_per_image_kept=round(
                      per_image * len(kept) / max(1, len(classes)), 4))
    return dict(classes=kept, params=dict(params)), report


class CRFRefiner:
    """The CRF of a test run: the kept classes refined before thresholds.

    Args:
        kept (Sequence[int]): Class indices that keep the CRF.
        params (dict): CRF parameters.
        img_dir (str, optional): Images of probability-folder members.

    Attributes:
        seconds (float): CRF time so far; ``num`` the images.
    """

    def __init__(self,
                 kept: Sequence[int],
                 params: Dict,
                 img_dir: Optional[str] = None) -> None:
        self.kept, self.params, self.img_dir = list(kept), params, img_dir
        self.seconds, self.num = 0.0, 0

    def predict(self, ensemble, item,
                thresholds: Optional[np.ndarray]) -> np.ndarray:
        """``(C, H, W)`` uint8 masks of one item, kept classes refined."""
        merged = ensemble.merge(item.probs)
        grey = item_image(item, merged.shape[1:], self.img_dir)
        start = time.perf_counter()
        merged = dense_crf(merged, grey, self.kept, **self.params)
        self.seconds += time.perf_counter() - start
        self.num += 1
        return ensemble.decide(merged, thresholds)

    def summary(self, classes: Sequence[str]) -> Dict:
        """``{'classes': kept names, 'seconds_per_image': s}``."""
        per_image = self.seconds / self.num if self.num else 0.0
        return dict(classes=[classes[c] for c in self.kept],
                    seconds_per_image=round(per_image, 4))


def crf_refiner(ensemble,
                spec: Optional[Dict],
                use_crf: bool = True,
                img_dir: Optional[str] = None,
                source: str = 'thresholds.json') -> Optional[CRFRefiner]:
    """The :class:`CRFRefiner` of a ``thresholds.json``'s ``"crf"`` entry.

    Args:
        ensemble (Ensemble): Its classes name the kept ones.
        spec (dict, optional): ``load_thresholds(...)['crf']``.
        use_crf (bool): False (``--no-crf``): none. Defaults to True.

    Returns:
        CRFRefiner | None: None without CRF or without kept classes.

    Raises:
        CRFUnavailableError: if the CRF is needed but not installed.
        ValueError: for a kept class that is not one of the ensemble's.
    """
    if not use_crf or not spec or not spec.get('classes'):
        return None
    classes = list(ensemble.classes)
    unknown = [c for c in spec['classes'] if c not in classes]
    if unknown:
        raise ValueError(f'{source}: "crf" keeps classes {unknown} that are '
                         f'not in {classes}')
    require_crf()
    kept = [classes.index(c) for c in spec['classes']]
    return CRFRefiner(kept, check_crf_params(spec.get('params'), source),
                      img_dir)
