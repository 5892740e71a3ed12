# Copyright (c) mmseg_ext contributors. All rights reserved.
"""MultiLabelDiceMetric (work in progress)."""
__all__ = []
