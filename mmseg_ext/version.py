# Copyright (c) mmseg_ext contributors. All rights reserved.
__version__ = '0.1.0'

# Supported dependency ranges: ``(min inclusive, max exclusive)``.
# ``setup.py`` and the import-time check in ``mmseg_ext/__init__.py`` both read
# this table, so the two can never disagree.
DEPENDENCY_RANGES = {
    'mmsegmentation': ('1.2.0', '1.3.0'),
    'mmengine': ('0.10.0', '0.11.0'),
    'mmcv': ('2.0.0', '2.2.0'),
}
