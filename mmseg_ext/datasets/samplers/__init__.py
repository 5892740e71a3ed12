# Copyright (c) mmseg_ext contributors. All rights reserved.
from .rare_class_sampler import (RareClassSampler, dataset_index_rows,
                                 dataset_item_counts, find_work_dir)

__all__ = [
    'RareClassSampler', 'dataset_index_rows', 'dataset_item_counts',
    'find_work_dir'
]
