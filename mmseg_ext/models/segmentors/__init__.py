# Copyright (c) mmseg_ext contributors. All rights reserved.
from .multilabel_encoder_decoder import *  # noqa: F401,F403
from .slide_inference import *  # noqa: F401,F403
from .tta import *  # noqa: F401,F403
