# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Multi-label data preprocessor (work in progress)."""
__all__ = []
