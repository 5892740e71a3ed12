# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Old name of :mod:`mmseg_ext.models.losses.multilabel_focal_loss`."""
from .multilabel_focal_loss import *  # noqa: F401,F403
