# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Dense-CRF refinement of per-class probability maps, kept where it helps.

The fully connected CRF of "Efficient Inference in Fully Connected CRFs with
Gaussian Edge Potentials" (Krähenbühl and Koltun, 2011), through the
``pydensecrf2`` package (PyPI; imported as ``pydensecrf``; an optional
dependency, ``pip install pydensecrf2``). Multi-label: each class is its own
two-label (background / bone) CRF on its sigmoid probability, with a
Gaussian (smoothness) and a bilateral (grey-level edges of the X-ray)
kernel. The reference hand-bone team found CRF hurt (over-smoothed thin
bones), so, as the connected-component post-processing of
:mod:`.postprocess`, it is kept only for the classes where it raises the
validation Dice: :func:`select_dense_crf` uses the same per-image Dice sums
and the same keep rule (:func:`~.postprocess.choose_postprocess`).
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .postprocess import choose_postprocess, dice_per_class

__all__ = [
    'DEFAULT_CRF_PARAMS', 'import_densecrf', 'dense_crf_probability',
    'dense_crf', 'dense_crf_dice_sums', 'select_dense_crf'
]

#: Kernel parameters (pixels, grey levels) and mean-field iterations.
DEFAULT_CRF_PARAMS = dict(
    iterations=5,
    gaussian_sxy=3,
    gaussian_compat=3,
    bilateral_sxy=50,
    bilateral_srgb=10,
    bilateral_compat=5)


def import_densecrf():
    """``pydensecrf.densecrf``, or an ImportError that says what to install.
    """
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as e:
        raise ImportError(
            'dense-CRF post-processing needs the optional package '
            "'pydensecrf2' (imported as pydensecrf): pip install pydensecrf2 "
            f'(builds from source: needs a C++ compiler); got: {e}') from e
    return dcrf


def _rgb(image: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[:2] != tuple(shape) or image.shape[2] != 3:
        raise ValueError(f'`image` should be (H, W) or (H, W, 3) with (H, W)'
                         f' = {tuple(shape)}, but got {image.shape}')
    return np.ascontiguousarray(image, dtype=np.uint8)


def dense_crf_probability(prob: np.ndarray, image: np.ndarray,
                          **params) -> np.ndarray:
    """Refine one class's foreground probability with a 2-label dense CRF.

    Args:
        prob (np.ndarray): ``(H, W)`` probabilities in ``[0, 1]``.
        image (np.ndarray): ``(H, W)`` grey or ``(H, W, 3)`` uint8 image
            (the bilateral kernel's colours).
        **params: Overrides of :data:`DEFAULT_CRF_PARAMS`.

    Returns:
        np.ndarray: ``(H, W)`` float32 refined probability.
    """
    dcrf = import_densecrf()
    p = dict(DEFAULT_CRF_PARAMS, **params)
    h, w = prob.shape
    fg = np.clip(np.asarray(prob, np.float32), 1e-6, 1 - 1e-6)
    unary = -np.log(np.stack([1 - fg, fg]).reshape(2, -1))
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=p['gaussian_sxy'],
                            compat=p['gaussian_compat'])
    crf.addPairwiseBilateral(sxy=p['bilateral_sxy'],
                             srgb=p['bilateral_srgb'],
                             rgbim=_rgb(image, (h, w)),
                             compat=p['bilateral_compat'])
    q = np.asarray(crf.inference(int(p['iterations'])), np.float32)
    return q[1].reshape(h, w)


def dense_crf(probs: np.ndarray,
              image: np.ndarray,
              classes: Optional[Iterable[int]] = None,
              **params) -> np.ndarray:
    """``(C, H, W)`` probabilities with the given classes CRF-refined.

    Args:
        probs (np.ndarray): ``(C, H, W)`` sigmoid probabilities.
        image (np.ndarray): ``(H, W)`` or ``(H, W, 3)`` uint8 image.
        classes (Iterable[int], optional): Class indices to refine.
            Defaults to None (all).
        **params: Overrides of :data:`DEFAULT_CRF_PARAMS`.

    Returns:
        np.ndarray: A float32 copy of ``probs``.
    """
    out = np.array(probs, dtype=np.float32, copy=True)
    for c in range(out.shape[0]) if classes is None else classes:
        out[c] = dense_crf_probability(out[c], image, **params)
    return out


def dense_crf_dice_sums(
        samples: Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray]],
        num_classes: int,
        threshold: float = 0.5,
        **params) -> Tuple[np.ndarray, int]:
    """Per-image Dice sums without / with CRF (sums of shards add up).

    Args:
        samples: ``(probs (C, H, W), image, gt (C, H, W))`` per image.
        num_classes (int): ``C``.
        threshold (float): Probability threshold. Defaults to 0.5.
        **params: Overrides of :data:`DEFAULT_CRF_PARAMS`.

    Returns:
        tuple[np.ndarray, int]: ``(2, C)`` Dice sums (row 0 without, row 1
        with CRF) and the number of images.
    """
    sums = np.zeros((2, num_classes))
    num = 0
    for probs, image, gt in samples:
        probs = np.asarray(probs)
        if probs.shape[0] != num_classes or probs.shape != np.shape(gt):
            raise ValueError(
                f'probabilities and target should both be (C={num_classes}, '
                f'H, W), but got {probs.shape} and {np.shape(gt)}')
        sums[0] += dice_per_class(probs > threshold, gt)
        sums[1] += dice_per_class(
            dense_crf(probs, image, **params) > threshold, gt)
        num += 1
    return sums, num


def select_dense_crf(
        samples: Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray]],
        classes: Sequence[str],
        threshold: float = 0.5,
        min_gain: float = 0.0,
        **params) -> Tuple[List[str], Dict]:
    """The classes whose validation Dice the CRF raises (by > ``min_gain``).

    Returns:
        tuple[list[str], dict]: The kept class names and the report
        ``{class: {'none': dice, 'crf': dice}}`` (mean Dice over images).
    """
    sums, num = dense_crf_dice_sums(samples, len(classes), threshold,
                                    **params)
    plan, report = choose_postprocess(sums, num, classes, [('crf', )],
                                      min_gain)
    return [c for c in classes if c in plan], report
