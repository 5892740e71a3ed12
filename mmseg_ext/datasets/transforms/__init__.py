# Copyright (c) mmseg_ext contributors. All rights reserved.
from .building_transforms import *  # noqa: F401,F403
from .multilabel_transforms import *  # noqa: F401,F403
