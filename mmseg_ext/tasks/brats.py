# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The BraTS brain-tumour task: regions WT / TC / ET on axial slices.

Data: the slice cache of ``tools/dataset_converters/brats.py`` read by
``BraTSDataset`` (one data info per slice, packed multi-label regions in
``label.npy`` volumes). Results are per *case*, not per image: the
``BraTSMetric`` evaluator reassembles the slices of each case into its
volume, scores Dice / HD95 per region and, with ``out_dir``, writes the
"submission" as one NIfTI label volume per case
(``{out_dir}/nifti/{case_id}.nii.gz``, labels of the case's scheme, the
input's affine and header). The per-image RLE submission and the PNG
pseudo-labels of :class:`BaseSegTask` do not apply and raise, naming what to
use instead.
"""
from typing import List

from mmseg.registry import TASK_UTILS

from .base import BaseSegTask

__all__ = ['BraTSTask']

_SUBMISSION_HINT = (
    'BraTS results are one NIfTI label volume per case, written by the '
    "volume metric: run tools/test.py with test_evaluator=dict(type="
    "'BraTSMetric', out_dir=OUT) (split='test' for unlabelled cases); the "
    'volumes are in OUT/nifti/{case_id}.nii.gz')
_PSEUDO_HINT = (
    'BraTS pseudo-labels are not written by the PNG pseudo-label tool: '
    'predict NIfTI volumes with BraTSMetric(out_dir=OUT), copy each '
    'OUT/nifti/{case_id}.nii.gz as the case\'s {case_id}_seg.nii.gz next to '
    'its modalities and run tools/dataset_converters/brats.py on that root')


@TASK_UTILS.register_module()
class BraTSTask(BaseSegTask):
    """Adapter of BraTS (``BraTSDataset``): 3 overlapping regions.

    Classes are ``('WT', 'TC', 'ET')`` (``BraTSDataset.METAINFO``); the
    ground truth is packed (``gt_format='packed'``, in ``label.npy``
    volumes); folds are the converter's split files (``fold``); the test
    split is ``split='test'`` (the unlabelled cases).

    Examples:
        >>> from mmseg_ext.tasks import build_task
        >>> task = build_task('brats')
        >>> task.classes, task.test_split_args()
        (('WT', 'TC', 'ET'), {'split': 'test'})
    """
    name = 'brats'
    title = 'BraTS'
    dataset_types = ('BraTSDataset', )
    fold_keys = ('fold', )
    gt_format = 'packed'
    submission_header = ()

    def test_split_args(self) -> dict:
        """``split='test'``: the unlabelled cases of ``splits/test.txt``."""
        return dict(split='test')

    # ----------------------------------------------------------- not BraTS
    def read_targets(self, path: str, num_classes: int, gt_format=None):
        """Raises: the ground truth is per-case volumes, not images."""
        raise ValueError(
            f'{path}: BraTS ground truth is a per-case label.npy volume '
            '(read by BraTSDataset / LoadBraTSSlice), not a per-image PNG; '
            'evaluate whole cases with BraTSMetric (tools/test.py)')

    def check_submission(self, decision: str) -> None:
        """Raises: there is no per-image CSV submission."""
        raise ValueError(f'the BraTS task has no CSV submission. '
                         f'{_SUBMISSION_HINT}')

    def submission_record(self, item, pred, decision, class_index):
        raise ValueError(_SUBMISSION_HINT)

    def write_submission(self, path, texts, num_images, classes) -> int:
        raise ValueError(f'{path}: {_SUBMISSION_HINT}')

    def list_unlabelled_images(self, images: str) -> List[dict]:
        """Raises: unlabelled cases are ``split='test'`` volumes."""
        raise ValueError(f'{images}: {_PSEUDO_HINT}')

    def pseudo_label_outputs(self, out_dir: str, item: dict):
        raise ValueError(_PSEUDO_HINT)

    def write_pseudo_label(self, outputs, item, positive, ignore):
        raise ValueError(_PSEUDO_HINT)

    def pseudo_label_dataset(self, out_dir: str, kept=()) -> dict:
        raise ValueError(_PSEUDO_HINT)
