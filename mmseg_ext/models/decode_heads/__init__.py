# Copyright (c) mmseg_ext contributors. All rights reserved.
from .multilabel_head import *  # noqa: F401,F403
from .unet_head import *  # noqa: F401,F403
from .deep_supervision import *  # noqa: F401,F403
from .unet3plus_head import *  # noqa: F401,F403
from .unet_plusplus_head import *  # noqa: F401,F403
