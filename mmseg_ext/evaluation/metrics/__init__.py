# Copyright (c) mmseg_ext contributors. All rights reserved.
from .building_dice_metric import *  # noqa: F401,F403
from .hand_bone_submission import *  # noqa: F401,F403
from .multilabel_dice_metric import *  # noqa: F401,F403
from .per_class_json import *  # noqa: F401,F403
from .brats_metric import *  # noqa: F401,F403
