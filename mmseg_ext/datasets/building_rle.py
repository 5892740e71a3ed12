# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BuildingRLEDataset (work in progress)."""
__all__ = []
