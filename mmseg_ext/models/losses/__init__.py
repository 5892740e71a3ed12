# Copyright (c) mmseg_ext contributors. All rights reserved.
# The plain loss functions (``softmax_focal_loss`` ...) live in the modules of
# the same name; they are not re-exported here so that those names keep
# pointing at the modules.
from .base import BaseSegLoss
from .distance_boundary_loss import DistanceBoundaryLoss
from .generalized_dice_loss import GeneralizedDiceLoss
from .multilabel_bce_loss import MultiLabelBCELoss
from .multilabel_focal_loss import MultiLabelFocalLoss
from .soft_dice_loss import SoftDiceLoss
from .softmax_focal_loss import SoftmaxFocalLoss
from .utils import LabelDtypeError, LossInputError

__all__ = [
    'SoftmaxFocalLoss', 'SoftDiceLoss', 'GeneralizedDiceLoss',
    'MultiLabelBCELoss', 'MultiLabelFocalLoss', 'BaseSegLoss',
    'LossInputError', 'LabelDtypeError', 'DistanceBoundaryLoss'
]
