# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Ensemble members and their ground truth.

- :class:`ProbDirMember`: a folder of saved probabilities;
- :class:`ModelMember`: a segmentor (``mmseg.apis.init_model``) run on its
  config's dataset one image at a time;
- :func:`label_to_targets` / :func:`sample_targets`: ``(C, H, W)`` targets
  from a class-index map or a sample's ``gt_sem_seg``.

Softmax members contribute ``softmax(seg_logits)``; binary
(``out_channels == 1``) members ``seg_logits`` as MMSeg's
``postprocess_result`` left them (already sigmoid probabilities);
multi-label members (:class:`MultiLabelEncoderDecoder`) their
``seg_logits`` (probabilities).
"""
import copy
import os
import warnings
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np

from mmseg_ext.datasets.transforms.annotation_loaders import \
    drop_annotation_loading
from mmseg_ext.utils.ensemble import quantize_probs
from .formats import PROB_SUFFIX, load_probs, probs_shape

__all__ = [
    'ProbDirMember', 'ModelMember', 'label_to_targets', 'sample_targets'
]


_INIT_MODEL_NOISE = ('dataset_meta or class names',
                     'No suitable dataset found')


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


class ProbDirMember:
    """A folder of saved probabilities, ``{image_stem}.npy`` uint8
    ``(C, H, W)`` each (see :func:`save_probs`).

    Args:
        folder (str): The folder (not searched recursively).

    Raises:
        FileNotFoundError: if the folder does not exist or holds no
            ``.npy`` file.
    """

    def __init__(self, folder: str) -> None:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'probability folder {folder!r} does not '
                                    'exist')
        self.folder = folder
        self.name = folder
        self.mode = None  # unknown: saved probabilities
        self.task = None  # unknown: no dataset
        self.paths = {
            name[:-len(PROB_SUFFIX)]: osp.join(folder, name)
            for name in sorted(os.listdir(folder))
            if name.endswith(PROB_SUFFIX) and not name.startswith('.')
        }
        if not self.paths:
            raise FileNotFoundError(f'probability folder {folder!r} has no '
                                    f'*{PROB_SUFFIX} file')
        self._num_classes = None

    @property
    def stems(self) -> List[str]:
        """Sorted image stems."""
        return list(self.paths)

    @property
    def num_classes(self) -> int:
        """``C`` of the first file (read from its header only)."""
        if self._num_classes is None:
            self._num_classes = probs_shape(next(iter(
                self.paths.values())))[0]
        return self._num_classes

    def load(self, stem: str) -> np.ndarray:
        """``(C, H, W)`` uint8 probabilities of one image."""
        path = self.paths.get(stem)
        if path is None:
            raise FileNotFoundError(
                f'probability folder {self.folder!r} has no {stem}'
                f'{PROB_SUFFIX}; every member needs every image')
        return load_probs(path)


class ModelMember:
    """A segmentor and the dataset of its config, run one image at a time.

    The dataset is the config's ``val_dataloader.dataset`` (``split='val'``)
    or ``test_dataloader.dataset`` (``split='test'``; annotation loading is
    dropped from its pipeline, so unlabelled test sets work). The model is
    MMSeg's ``init_model`` (``pretrained=None``, ``train_cfg=None``, the
    checkpoint loaded, ``eval()`` on ``device``) and runs ``test_step`` on
    one sample at a time (the config's ``test_cfg``: whole/slide, flip...).

    ``init_model`` clears the backbone's ``init_cfg`` only for the type
    ``'EncoderDecoder'``; it is cleared here for every segmentor (e.g.
    ``MultiLabelEncoderDecoder``), so no pretrained weights are downloaded
    before the checkpoint replaces them.

    Args:
        config (str): Config path.
        checkpoint (str): Checkpoint path.
        split (str): ``'val'`` or ``'test'``. Defaults to ``'test'``.
        cfg_options (dict, optional): Merged into the config (e.g. the data
            root). Defaults to None.
        device (str): Defaults to ``'cpu'``.

    Attributes:
        task (BaseSegTask | None): The task of the dataset
            (:func:`mmseg_ext.tasks.task_from_dataset`).

    Raises:
        ValueError: if the test pipeline is a ``TestTimeAug`` one.
    """

    def __init__(self,
                 config: str,
                 checkpoint: str,
                 split: str = 'test',
                 cfg_options: Optional[dict] = None,
                 device: str = 'cpu') -> None:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmseg.apis import init_model
        from mmseg.registry import DATASETS

        from mmseg_ext.models.segmentors.tta import ProbSegTTAModel
        from mmseg_ext.tasks import task_from_dataset

        if split not in ('val', 'test'):
            raise ValueError(f"`split` should be 'val' or 'test', but got "
                             f'{split!r}')
        if not osp.isfile(config):
            raise FileNotFoundError(f'config {config!r} does not exist')
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint!r} does not '
                                    'exist')
        self.config, self.checkpoint = config, checkpoint
        self.name = f'{config} ({osp.basename(checkpoint)})'
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmseg'))

        loader = f'{split}_dataloader'
        if loader not in cfg or 'dataset' not in cfg[loader]:
            raise ValueError(f'{config}: has no `{loader}.dataset` to '
                             f'run the {split} split on')
        dataset_cfg = copy.deepcopy(cfg[loader]['dataset'])
        pipeline = dataset_cfg.get('pipeline', [])
        if any(t.get('type') == 'TestTimeAug' for t in pipeline):
            raise ValueError(
                f'{config}: its {loader} pipeline uses TestTimeAug, which '
                'the ensemble does not run; use the segmentor\'s '
                '`test_cfg.flip` (MultiLabelEncoderDecoder) or a plain test '
                'pipeline')
        if split == 'test':
            dataset_cfg['pipeline'] = drop_annotation_loading(pipeline)[0]
        self.task = task_from_dataset(dataset_cfg)
        self.dataset = DATASETS.build(dataset_cfg)

        if isinstance(cfg.model.get('backbone'), dict):
            cfg.model.backbone.init_cfg = None
        with warnings.catch_warnings(record=True) as caught:
            # init_model sets a global 'once' filter (undone on leaving
            # this block) and warns about class names missing from the
            # checkpoint's meta: the ensemble takes them from the member's
            # dataset, so those two are dropped and the others re-raised.
            self.model = init_model(cfg, checkpoint, device=device)
        for w in caught:
            if not str(w.message).startswith(_INIT_MODEL_NOISE):
                warnings.warn_explicit(w.message, w.category, w.filename,
                                       w.lineno)
        self.mode = ProbSegTTAModel.detect_mode(self.model)
        self.classes = list(self.dataset.metainfo.get('classes') or [])

    @property
    def num_classes(self) -> int:
        """``C`` of the probabilities: the segmentor's ``out_channels``."""
        out = getattr(self.model, 'out_channels', None)
        if out is None:
            out = getattr(getattr(self.model, 'decode_head', None),
                          'out_channels', None)
        return int(out) if out is not None else len(self.classes)

    def __len__(self) -> int:
        return len(self.dataset)

    def img_path(self, index: int) -> str:
        """Image path of sample ``index`` (no pipeline run)."""
        return self.dataset.get_data_info(index)['img_path']

    def predict(self, index: int) -> Tuple[np.ndarray, object]:
        """Run sample ``index``.

        Returns:
            tuple[np.ndarray, SegDataSample]: ``(C, H, W)`` uint8
            probabilities at the original size and the output sample.
        """
        import torch
        from mmengine.dataset import pseudo_collate

        data = pseudo_collate([self.dataset[index]])
        with torch.no_grad():
            sample = self.model.test_step(data)[0]
        logits = sample.seg_logits.data.float()
        if self.mode == 'softmax':
            logits = logits.softmax(dim=0)
        probs = quantize_probs(logits.cpu().numpy())
        del sample.seg_logits, logits  # keep only the uint8 copy
        return probs, sample


# ------------------------------------------------------------- ground truth
def label_to_targets(label: np.ndarray,
                     num_classes: int,
                     ignore_index: Optional[int] = 255) -> np.ndarray:
    """A class-index map ``(H, W)`` as ``(C, H, W)`` targets.

    ``C == 1`` (binary): class 1 is the foreground. Pixels equal to
    ``ignore_index`` are ``ignore_index`` in every class (None: no pixel
    is ignored, e.g. for predicted label maps).
    """
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[0] == 1:
        label = label[0]
    if label.ndim != 2:
        raise ValueError('a label map should be (H, W), but got '
                         f'{label.shape}')
    if num_classes == 1:
        targets = (label == 1)[None].astype(np.uint8)
    else:
        targets = (label[None] == np.arange(num_classes).reshape(
            -1, 1, 1)).astype(np.uint8)
    if ignore_index is None:
        return targets
    ignored = label == ignore_index
    if ignored.any():
        targets[:, ignored] = ignore_index
    return targets


def sample_targets(sample, num_classes: int, mode: str) -> np.ndarray:
    """``(C, H, W)`` uint8 targets from a sample's ``gt_sem_seg``: packed
    multi-label (unpacked here), already unpacked (``mode ==
    'multilabel'``) or a class-index map."""
    from mmseg_ext.utils.multilabel import as_unpacked, is_packed
    if 'gt_sem_seg' not in sample:
        raise ValueError(
            f'{sample.metainfo.get("img_path")} has no ground truth; the '
            "validation split needs its member config's val pipeline to "
            'load annotations')
    gt = sample.gt_sem_seg.data
    if is_packed(gt):
        return as_unpacked(gt, num_classes).cpu().numpy()
    gt = gt.cpu().numpy()
    if mode == 'multilabel':  # unpacked by the data preprocessor
        if gt.ndim != 3 or gt.shape[0] != num_classes:
            raise ValueError(
                f'{sample.metainfo.get("img_path")}: multi-label ground '
                f'truth should be (C={num_classes}, H, W), but got '
                f'{gt.shape}')
        return gt.astype(np.uint8)
    return label_to_targets(gt, num_classes)
