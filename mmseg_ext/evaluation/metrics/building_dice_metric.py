# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BuildingDiceMetric (work in progress)."""
__all__ = []
