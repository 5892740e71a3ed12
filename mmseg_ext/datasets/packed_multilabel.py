# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Generic packed multi-label dataset (work in progress)."""
__all__ = []
