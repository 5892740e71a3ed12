# Copyright (c) mmseg_ext contributors. All rights reserved.
"""HandBoneDataset (work in progress)."""
__all__ = []
