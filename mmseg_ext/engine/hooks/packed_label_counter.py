# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Packed-label pixel counter (work in progress)."""
__all__ = []
