# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Building transforms (work in progress)."""
__all__ = []
