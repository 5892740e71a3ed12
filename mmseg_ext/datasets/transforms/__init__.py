# Copyright (c) mmseg_ext contributors. All rights reserved.
from .annotation_loaders import *  # noqa: F401,F403
from .building_transforms import *  # noqa: F401,F403
from .multilabel_transforms import *  # noqa: F401,F403
from .brats_transforms import *  # noqa: F401,F403
from .distance_map_transforms import *  # noqa: F401,F403
from .rare_class_copy_paste import *  # noqa: F401,F403
from .unify_flip import *  # noqa: F401,F403
