# Copyright (c) mmseg_ext contributors. All rights reserved.
"""mmseg_ext: class-imbalance and multi-label toolkit for MMSegmentation 1.x.

``import mmseg_ext`` (or ``custom_imports = dict(imports=['mmseg_ext'])`` in a
config) checks the installed dependency versions and registers every module
of this package into MMSegmentation's own registries (default scope
``mmseg``).
"""
from importlib.metadata import PackageNotFoundError, version as _dist_version

from .version import DEPENDENCY_RANGES, __version__


def _parse(ver: str) -> tuple:
    """Turn ``'1.2.2'`` / ``'2.1.0rc1'`` into a comparable tuple of ints."""
    parts = []
    for piece in ver.split('+')[0].split('.')[:3]:
        digits = ''
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def check_dependency_versions(ranges: dict = DEPENDENCY_RANGES) -> None:
    """Raise ``ImportError`` naming installed and supported versions.

    Args:
        ranges (dict): ``{distribution: (min_inclusive, max_exclusive)}``.

    Raises:
        ImportError: if a distribution is missing or out of range.
    """
    problems = []
    for dist, (low, high) in ranges.items():
        try:
            installed = _dist_version(dist)
        except PackageNotFoundError:
            if dist == 'mmcv':
                # mmcv-lite lacks the compiled ops mmseg imports.
                problems.append(
                    'mmcv is not installed (mmcv-lite is not enough: mmseg '
                    f'imports mmcv.ops); supported: >={low},<{high}')
            else:
                problems.append(
                    f'{dist} is not installed; supported: >={low},<{high}')
            continue
        if not _parse(low) <= _parse(installed) < _parse(high):
            problems.append(f'{dist}=={installed} is installed, but '
                            f'mmseg_ext {__version__} supports '
                            f'>={low},<{high}')
    if problems:
        raise ImportError('mmseg_ext cannot be used with the installed '
                          'packages:\n  - ' + '\n  - '.join(problems) +
                          '\nInstall supported versions, e.g. '
                          '`bash tools/setup_env.sh`.')


check_dependency_versions()

from . import apis, datasets, engine, evaluation, models  # noqa: E402,F401
from . import tasks, utils, visualization  # noqa: E402,F401
from ._mim import register_config_scope  # noqa: E402
from .engine.compat import apply_compat_patches  # noqa: E402

apply_compat_patches()
register_config_scope()  # `mmseg_ext::` in configs

__all__ = ['__version__', 'check_dependency_versions']
