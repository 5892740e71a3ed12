# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Multi-label transforms (work in progress)."""
__all__ = []
