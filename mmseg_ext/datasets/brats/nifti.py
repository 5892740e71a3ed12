# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Read a BraTS case with nibabel; write NIfTI volumes atomically.

A file is read whole into memory (a BraTS volume is ~17 MB), decompressed
with :mod:`gzip` (whose CRC check catches any corruption of the data) and
parsed from the bytes, so a truncated or corrupt file is one
:class:`InputError` naming the file instead of nibabel's, gzip's or zlib's
many exception types, and a header that promises more voxels than the file
holds is caught before any allocation.
"""
import gzip
import os.path as osp
import struct
import zlib
from typing import Optional, Sequence

import nibabel as nib
import numpy as np

from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.io import atomic_path
from .labels import labels_to_regions, scheme_labels
from .layout import BraTSCase, select_modalities

__all__ = ['read_nifti', 'read_brats_case', 'write_nifti']

#: Largest affine difference (mm) tolerated between a case's files.
AFFINE_ATOL = 1e-3

_DECODE_ERRORS = (OSError, EOFError, zlib.error, ValueError, struct.error,
                  TypeError, IndexError, OverflowError, MemoryError,
                  nib.filebasedimages.ImageFileError,
                  nib.spatialimages.HeaderDataError,
                  nib.wrapstruct.WrapStructError)


def read_nifti(path: str, where: Optional[str] = None) -> nib.Nifti1Image:
    """Load ``path`` (``.nii`` or ``.nii.gz``) fully into memory.

    Returns:
        nib.Nifti1Image: The image; its ``dataobj`` is in memory.

    Raises:
        InputError: a missing, truncated or corrupt file, or a header
            that does not match the file size.
    """
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as err:
        raise InputError(path=path, where=where, reason='NIfTI file',
                         value=err.strerror or str(err),
                         expected='a readable file') from err
    try:
        if path.endswith('.gz'):
            raw = gzip.decompress(raw)
        # nibabel "fixes" a bad sizeof_hdr and only logs a bad magic; a
        # file failing either is not (an intact) single-file NIfTI-1.
        if len(raw) < 348 or raw[344:348] != b'n+1\0' or 348 not in (
                struct.unpack('<i', raw[:4])[0],
                struct.unpack('>i', raw[:4])[0]):
            raise ValueError("no single-file NIfTI-1 header (sizeof_hdr "
                             "348, magic 'n+1')")
        img = nib.Nifti1Image.from_bytes(raw)
        hdr = img.header
        shape = tuple(int(s) for s in hdr.get_data_shape())
        need = int(hdr['vox_offset']) + \
            int(np.prod(shape, dtype=np.int64)) * hdr.get_data_dtype().itemsize
        if need > len(raw):
            raise ValueError(f'header needs {need} bytes, file has '
                             f'{len(raw)} (truncated?)')
        img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, hdr)
    except _DECODE_ERRORS as err:
        raise InputError(path=path, where=where,
                         reason='truncated or corrupt NIfTI file',
                         value=f'{type(err).__name__}: {err}',
                         expected='a complete .nii/.nii.gz file; '
                         're-download or re-extract it') from err
    return img


def _where(case: BraTSCase) -> str:
    return f'case {case.case_id!r}'


def read_brats_case(case: BraTSCase,
                    modalities: Optional[Sequence[str]] = None,
                    label_scheme: Optional[str] = None,
                    affine_atol: float = AFFINE_ATOL) -> dict:
    """Read one case: the modalities stacked, its label, affine, header.

    Args:
        case (BraTSCase): From :func:`find_brats_cases`.
        modalities (Sequence[str], optional): A subset, as file tags
            (``'t1ce'``) or physical names (``'T1ce'``); the given order is
            the channel order. Defaults to None (all four, physical order
            FLAIR, T1, T1ce, T2).
        label_scheme (str, optional): Defaults to ``case.label_scheme``.
        affine_atol (float): Tolerance (mm) when comparing the affines of
            the files. Defaults to 1e-3.

    Returns:
        dict: ``case_id``, ``modalities`` (tags), ``image`` ``(M, X, Y,
        Z)`` float32, ``seg`` ``(X, Y, Z)`` uint8 or None, ``affine``
        ``(4, 4)`` float64 and ``header`` (of the first modality),
        ``spacing`` ``(3, )`` tuple of float (mm, from the header zooms).

    Raises:
        InputError: naming the case and the file, for a missing modality,
            a truncated/corrupt file, a shape or affine that differs from
            the first modality's, or a label value the scheme lacks.
    """
    label_scheme = label_scheme or case.label_scheme
    scheme_labels(label_scheme)  # ValueError for an unknown scheme
    tags = select_modalities(case.naming, modalities)
    where = _where(case)
    volumes, ref = [], None
    for tag in tags:
        path = case.images[case.modalities.index(tag)]
        if path is None:
            raise InputError(path=case.expected_path(tag), where=where,
                             reason=f'modality {tag!r}', value='missing',
                             expected='.nii or .nii.gz file')
        img = read_nifti(path, where)
        if img.ndim != 3:
            raise InputError(path=path, where=where, reason='volume shape',
                             value=img.shape, expected='(X, Y, Z)')
        if ref is None:
            ref = (img, path)
        else:
            _check_same_grid(img, path, ref, where, affine_atol)
        volumes.append(np.asarray(img.dataobj, dtype=np.float32))
    ref_img = ref[0]
    seg = None
    if case.seg is not None:
        img = read_nifti(case.seg, where)
        _check_same_grid(img, case.seg, ref, where, affine_atol)
        label = np.asanyarray(img.dataobj)
        try:
            labels_to_regions(label, label_scheme, path=case.seg)
        except InputError as err:
            raise InputError(path=case.seg, where=where, reason=err.reason,
                             value=err.value,
                             expected=err.expected) from err
        seg = label.astype(np.uint8)
    return dict(
        case_id=case.case_id,
        modalities=tags,
        image=np.stack(volumes),
        seg=seg,
        affine=np.asarray(ref_img.affine, dtype=np.float64),
        header=ref_img.header,
        spacing=tuple(float(z) for z in ref_img.header.get_zooms()[:3]))


def _check_same_grid(img, path, ref, where, atol):
    ref_img, ref_path = ref
    name = osp.basename(ref_path)
    if img.shape != ref_img.shape:
        raise InputError(path=path, where=where, reason='volume shape',
                         value=img.shape,
                         expected=f'{ref_img.shape} as {name}')
    if not np.allclose(img.affine, ref_img.affine, rtol=0, atol=atol):
        diff = float(np.abs(img.affine - ref_img.affine).max())
        raise InputError(path=path, where=where, reason='affine',
                         value=f'differs by up to {diff:.4g}',
                         expected=f'the affine of {name} (within {atol})')


def write_nifti(path: str, volume: np.ndarray, affine: np.ndarray,
                header: Optional[nib.Nifti1Header] = None) -> None:
    """Write ``volume`` to ``path`` (``.nii`` or ``.nii.gz``) atomically.

    The image is serialised in memory (gzip with ``mtime=0``, so equal
    inputs give equal bytes) and written through
    :func:`mmseg_ext.utils.io.atomic_path`; its temporary name keeps only
    the last suffix (``.gz``), which does not matter as nibabel never sees
    it.

    Args:
        path (str): Destination ending in ``.nii`` or ``.nii.gz``.
        volume (np.ndarray): ``(X, Y, Z)`` (or more dims) array; its dtype
            is the stored dtype, unscaled.
        affine (np.ndarray): ``(4, 4)`` voxel → world.
        header (nib.Nifti1Header, optional): Copied (e.g. the input's).
            Defaults to None.
    """
    if not (path.endswith('.nii') or path.endswith('.nii.gz')):
        raise ValueError(f'`path` should end with .nii or .nii.gz, but got '
                         f'{path!r}')
    volume = np.asarray(volume)
    img = nib.Nifti1Image(volume, np.asarray(affine, dtype=np.float64),
                          header)
    img.header.set_data_dtype(volume.dtype)
    img.header.set_slope_inter(None, None)
    data = img.to_bytes()
    if path.endswith('.gz'):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)
