# Copyright (c) mmseg_ext contributors. All rights reserved.
"""MultiLabelEncoderDecoder (work in progress)."""
__all__ = []
