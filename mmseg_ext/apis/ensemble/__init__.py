# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Ensembling segmentors one image at a time (``tools/ensemble.py``).

One module per job:

- :mod:`.formats`: probability / weight / score / threshold files
  (``save_probs``, ``load_probs``, ``load_weights``, ``load_scores``,
  ``load_thresholds``), validated;
- :mod:`.members`: :class:`ProbDirMember` (saved probabilities),
  :class:`ModelMember` (a segmentor via ``mmseg.apis.init_model``) and
  their ground truth;
- :mod:`.merge`: :class:`Ensemble`, the streaming merge engine (soft /
  hard / classwise vote, threshold / argmax decision);
- :mod:`.search`: :func:`ensemble_val`, per-class threshold (or ``k``)
  search, post-processing choice and the Dice-vs-threshold plot;
- :mod:`.writers`: :func:`ensemble_test`, masks and the submission CSV
  (:class:`SubmissionSpool`);
- :mod:`.crf`: the dense-CRF option of both (kept per class where it
  raises validation Dice).

Competition rules (class names, CSV layouts, which channel is a building)
are the task adapters' (:mod:`mmseg_ext.tasks`).

Multi-process (``torchrun``, ``tools/ensemble.py --launcher pytorch``):
with a process group, :func:`ensemble_val` and :func:`ensemble_test` shard
the images by rank (:func:`mmseg_ext.utils.dist.shard`); every rank runs
all members on its images and writes its own masks / probability files,
threshold and post-processing sums are added over ranks, and submission
rows are streamed to rank 0 in bounded chunks, which writes the ONE CSV
(no per-rank partial files). Every rank must call them; an error on one
rank raises on all (:func:`mmseg_ext.utils.dist.sync_errors`).
"""
from mmseg_ext.datasets.transforms.annotation_loaders import \
    ANNOTATION_LOADERS
from .crf import CRFUnavailableError
from .formats import (PROB_SUFFIX, ScoresError, ThresholdsError,
                      WeightsError, check_member_weights, load_probs,
                      load_scores, load_thresholds, load_weights, save_probs)
from .members import (ModelMember, ProbDirMember, label_to_targets,
                      sample_targets)
from .merge import (DECISIONS, MERGE_CHUNK_BYTES, Ensemble, EnsembleItem,
                    vote_fraction)
from .search import ensemble_val, plot_threshold_curves
from .writers import SubmissionSpool, ensemble_test

__all__ = [
    'DECISIONS', 'PROB_SUFFIX', 'save_probs', 'load_probs', 'load_weights',
    'load_scores', 'load_thresholds', 'vote_fraction', 'ProbDirMember',
    'ModelMember', 'Ensemble', 'EnsembleItem', 'SubmissionSpool',
    'ensemble_val', 'ensemble_test', 'label_to_targets',
    'plot_threshold_curves', 'check_member_weights', 'sample_targets',
    'WeightsError', 'ScoresError', 'ThresholdsError',
    'ANNOTATION_LOADERS', 'MERGE_CHUNK_BYTES', 'CRFUnavailableError'
]


def __getattr__(name):
    # ``SUBMISSIONS``: the registered task names, read when asked (a task
    # registered later, e.g. in a test, is included).
    if name == 'SUBMISSIONS':
        from mmseg_ext.tasks import task_names
        return tuple(task_names())
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
