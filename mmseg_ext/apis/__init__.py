# Copyright (c) mmseg_ext contributors. All rights reserved.
"""High-level inference APIs (no registry): model ensembling."""
from .ensemble import (DECISIONS, Ensemble, ModelMember, ProbDirMember,
                       ensemble_test, ensemble_val, load_probs, load_scores,
                       load_thresholds, load_weights, save_probs,
                       vote_fraction)

__all__ = [
    'DECISIONS', 'Ensemble', 'ModelMember', 'ProbDirMember', 'ensemble_test',
    'ensemble_val', 'load_probs', 'load_scores', 'load_thresholds',
    'load_weights', 'save_probs', 'vote_fraction'
]
