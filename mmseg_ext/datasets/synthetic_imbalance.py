# Copyright (c) mmseg_ext contributors. All rights reserved.
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .generators.synthetic_imbalance import CLASSES, PALETTE


@DATASETS.register_module()
class SyntheticImbalanceDataset(BaseSegDataset):
    """The generated class-imbalanced demo dataset.

    Written by :func:`mmseg_ext.datasets.generators.
    generate_synthetic_imbalance` (``tools/misc/generate_demo_data.py``) in
    mmseg's folder layout: ``img_dir/{split}/*.png`` and
    ``ann_dir/{split}/*.png`` with labels 0..3; ``car`` covers well under
    1 % of the pixels.

    Args:
        img_suffix (str): Defaults to ``'.png'``.
        seg_map_suffix (str): Defaults to ``'.png'``.
        reduce_zero_label (bool): Defaults to False (0 is ``background``).
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
