# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Compatibility patches for torch >= 2.6 with mmengine 0.10.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True`` and refuses
any global that is not allowlisted. mmengine 0.10 calls ``torch.load`` without
``weights_only``, and its checkpoints carry, besides tensors, the state of the
``MessageHub`` (``HistoryBuffer`` objects holding numpy arrays, numpy scalars
such as ``eta``). ``--resume`` and ``tools/test.py`` therefore fail with
``Weights only load failed ... Unsupported global``.

:func:`apply_compat_patches` allowlists exactly the globals such a checkpoint
needs (found by saving one with a real ``Runner`` and listing them with
``torch.serialization.get_unsafe_globals_in_checkpoint``); ``weights_only``
stays True and ``torch.load`` is not patched. It runs on ``import mmseg_ext``,
so it is active in our tools and in MMSeg's own tools through
``custom_imports`` (``Config.fromfile`` imports them, before the ``Runner``
loads any checkpoint).
"""
import pickle

import torch

_APPLIED = False

# Statistic methods mmengine's HistoryBuffer registers on itself.
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to the methods ``HistoryBuffer`` pickles.

    ``HistoryBuffer.__getstate__`` stores its ``_statistics_methods``
    (``{'mean': HistoryBuffer.mean, ...}``), and pickle protocol 2 (the one
    ``torch.save`` uses) writes ``HistoryBuffer.mean`` as
    ``builtins.getattr(HistoryBuffer, 'mean')``. Allowlisting the real
    ``getattr`` would let a checkpoint read any attribute of any loaded
    object, so this stand-in is registered under the name
    ``builtins.getattr`` and answers only ``HistoryBuffer`` statistic
    methods.

    Raises:
        pickle.UnpicklingError: for any other object or attribute.
    """
    from mmengine.logging import HistoryBuffer

    allowed = set(_HISTORY_BUFFER_METHODS)
    # Custom statistics registered on HistoryBuffer itself pickle the same
    # way (`HistoryBuffer.register_statistics`).
    allowed.update(
        key for key, method in HistoryBuffer._statistics_methods.items()
        if getattr(HistoryBuffer, key, None) is method)
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        'mmseg_ext allows `builtins.getattr` in checkpoints only for the '
        f'statistic methods of HistoryBuffer ({sorted(allowed)}), but got '
        f'getattr({obj!r}, {name!r}). Load this file with '
        '`weights_only=False` only if you trust its source.')


def _checkpoint_safe_globals() -> list:
    """Globals of an mmengine checkpoint, as ``add_safe_globals`` entries."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
        new_core = True
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
        new_core = False

    safe = [
        # MessageHub.log_scalars values.
        HistoryBuffer,
        # HistoryBuffer._statistics_methods (see _history_buffer_getattr).
        (_history_buffer_getattr, 'builtins.getattr'),
        # numpy arrays (HistoryBuffer._log_history, ._count_history):
        # `_reconstruct(ndarray, (0,), b'b')` + `dtype('f8', ...)`.
        _reconstruct,
        np.ndarray,
        np.dtype,
        # numpy scalars (MessageHub.runtime_info['eta'], metrics).
        scalar,
    ]
    # Unpickling a dtype ends with BUILD (`dtype.__setstate__`), which torch
    # allows only for allowlisted types: the class of each dtype instance.
    # float64 (logged values, `eta`) and int64 (counts) are the dtypes of
    # HistoryBuffer's arrays.
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        safe += [dtypes.Float64DType, dtypes.Int64DType]
    else:
        safe += [type(np.dtype(np.float64)), type(np.dtype(np.int64))]
    if new_core:
        # Checkpoints written under numpy 1.x name the same functions
        # `numpy.core.multiarray.*`.
        safe += [(_reconstruct, 'numpy.core.multiarray._reconstruct'),
                 (scalar, 'numpy.core.multiarray.scalar')]
    return safe


def apply_compat_patches() -> None:
    """Apply the patches mmengine needs on the installed torch (idempotent).

    Allowlists for ``torch.load(weights_only=True)``: ``HistoryBuffer``,
    a ``builtins.getattr`` restricted to ``HistoryBuffer``'s statistic
    methods, ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``,
    ``numpy.dtype``, ``numpy.dtypes.Float64DType``,
    ``numpy.dtypes.Int64DType``, ``numpy._core.multiarray.scalar`` (plus the
    ``numpy.core.multiarray`` names of numpy 1.x checkpoints). Nothing is
    done on torch versions without ``torch.serialization.add_safe_globals``
    (< 2.4), whose ``torch.load`` does not default to ``weights_only``.
    """
    global _APPLIED
    if _APPLIED:
        return
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(_checkpoint_safe_globals())
    _APPLIED = True
