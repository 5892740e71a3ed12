# Copyright (c) mmseg_ext contributors. All rights reserved.
from .merged_groups_constructor import (MergedGroupsOptimWrapperConstructor,
                                        merge_param_groups)

__all__ = ['MergedGroupsOptimWrapperConstructor', 'merge_param_groups']
