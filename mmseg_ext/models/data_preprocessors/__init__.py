# Copyright (c) mmseg_ext contributors. All rights reserved.
from .multilabel_data_preprocessor import *  # noqa: F401,F403
