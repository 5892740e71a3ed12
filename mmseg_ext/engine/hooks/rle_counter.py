# Copyright (c) mmseg_ext contributors. All rights reserved.
"""RLE pixel counter (work in progress)."""
__all__ = []
