# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Hand-bone generator (work in progress)."""
__all__ = []
