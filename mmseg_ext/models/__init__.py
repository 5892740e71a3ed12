# Copyright (c) mmseg_ext contributors. All rights reserved.
from .losses import *  # noqa
