# Copyright (c) mmseg_ext contributors. All rights reserved.
"""High-level APIs (no registry): ensembling, K-fold runs, pseudo-labels.

Task-specific rules come from the task adapters (:mod:`mmseg_ext.tasks`).
"""
from .ensemble import (DECISIONS, Ensemble, ModelMember, ProbDirMember,
                       SubmissionSpool, ensemble_test, ensemble_val,
                       load_probs, load_scores, load_thresholds, load_weights,
                       save_probs, vote_fraction)

__all__ = [
    'DECISIONS', 'Ensemble', 'ModelMember', 'ProbDirMember',
    'SubmissionSpool', 'ensemble_test', 'ensemble_val', 'load_probs',
    'load_scores', 'load_thresholds', 'load_weights', 'save_probs',
    'vote_fraction'
]
from .kfold import *  # noqa: F401,F403,E402
from .pseudo_label import *  # noqa: F401,F403,E402
