# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Small I/O helpers: atomic writes of files people and tools read."""
import contextlib
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
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a
        # plain open() would (0666 minus the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


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
            raise OSError(f'could not write image {path!r} (shape '
                          f'{img.shape}, dtype {img.dtype}): {err}') from err
        if not ok:
            raise OSError(f'could not write image {path!r} '
                          f'(shape {img.shape}, dtype {img.dtype})')
