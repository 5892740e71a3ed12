# Copyright (c) mmseg_ext contributors. All rights reserved.
from .single_channel import *  # noqa: F401,F403
