# Copyright (c) mmseg_ext contributors. All rights reserved.
from . import data_preprocessors, decode_heads, losses, segmentors  # noqa
from . import backbones  # noqa
