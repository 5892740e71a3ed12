# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Hand-bone submission writer (work in progress)."""
__all__ = []
