# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Small I/O helpers: atomic writes of files people and tools read."""
import contextlib
import errno
import json
import os
import os.path as osp
import tempfile
from typing import Any, Iterator

import cv2
import numpy as np


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it over ``path``.

    The temporary file lives in the same folder, so ``os.replace`` is atomic:
    readers see either the old file or the complete new one, never a partial
    write. On error the temporary file is removed and ``path`` is untouched.

    Args:
        path (str): Final destination.

    Yields:
        str: Temporary path to write to (keeps the extension of ``path`` so
        writers that infer the format from it, e.g. ``cv2.imwrite``, work).
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = osp.splitext(path)[1]
    prefix = f'.{osp.basename(path)}.'
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as err:  # e.g. a read-only folder
        raise _on_user_path(err, path, prefix) from err
    os.close(fd)
    try:
        try:
            yield tmp
        except OSError as err:
            raise _on_user_path(err, path, prefix) from err
        # mkstemp creates 0600 files; give the result the permissions a
        # plain open() would (0666 minus the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        try:
            os.replace(tmp, path)
        except OSError as err:  # e.g. `path` is a folder
            raise _on_user_path(err, path, prefix) from err
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _on_user_path(err: OSError, path: str, prefix: str) -> OSError:
    """``err`` naming ``path`` instead of our temporary file (users never
    see the temporary name; they must fix ``path`` or its folder)."""
    names = [err.filename, err.filename2]
    if not any(n is not None and osp.basename(str(n)).startswith(prefix)
               for n in names) and not (err.filename is None
                                        and err.errno is None):
        return err
    try:
        new = type(err)(err.errno, err.strerror or str(err), path)
    except TypeError:  # a subclass with another constructor
        new = OSError(err.errno, err.strerror or str(err), path)
    return new


def dump_json_atomic(obj: Any, path: str, **kwargs) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    kwargs.setdefault('indent', 2)
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(obj, f, **kwargs)


def imwrite_atomic(img: np.ndarray, path: str, params=None) -> None:
    """Write an image with OpenCV atomically; raise if OpenCV refuses.

    Args:
        img (np.ndarray): The image.
        path (str): Destination; the extension picks the format.
        params (list, optional): ``cv2.imwrite`` flags, e.g.
            ``[cv2.IMWRITE_PNG_COMPRESSION, 9]``. Defaults to None.

    Raises:
        OSError: if the image could not be encoded or written.
    """
    with atomic_path(path) as tmp:
        try:
            ok = cv2.imwrite(tmp, img, params or [])
        except cv2.error as err:
            raise OSError(
                errno.EIO, f'OpenCV could not write the image (shape '
                f'{img.shape}, dtype {img.dtype}): {_first_line(err)}',
                path) from err
        if not ok:
            raise OSError(
                errno.EIO, 'OpenCV could not write the image (shape '
                f'{img.shape}, dtype {img.dtype}; check the extension)',
                path)


def _first_line(err: BaseException) -> str:
    """OpenCV's reason without its source location: ``'OpenCV(5.1.0)
    .../loadsave.cpp:1091: error: (-2:Unspecified error) could not find a
    writer ... in function 'imwrite_'`` -> ``'could not find a writer
    ...'``."""
    lines = str(err).strip().splitlines()
    text = lines[-1].strip() if lines else type(err).__name__
    if 'error: (' in text:
        text = text.split('error: (', 1)[1].split(') ', 1)[-1]
    return text.split(' in function ')[0]
