# Copyright (c) mmseg_ext contributors. All rights reserved.
"""MultiLabelHead (work in progress)."""
__all__ = []
