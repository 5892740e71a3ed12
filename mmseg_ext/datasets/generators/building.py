# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Building generator (work in progress)."""
__all__ = []
