# Copyright (c) mmseg_ext contributors. All rights reserved.
from .multilabel_head import *  # noqa: F401,F403
from .unet_head import *  # noqa: F401,F403
