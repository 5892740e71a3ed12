# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The hard strategy's search keeps the votes needed ``k`` as integers."""
import json

import cv2
import numpy as np
import pytest

from mmseg_ext.apis.ensemble import Ensemble, ProbDirMember, save_probs
from mmseg_ext.apis.ensemble.search import ensemble_val


@pytest.fixture
def members(tmp_path):
    """3 members of one 1 x 4 binary image; truth: pixels 0 and 1."""
    votes = [[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1]]  # 3, 2, 1, 1 votes
    dirs = []
    for i, v in enumerate(votes):
        folder = str(tmp_path / f'm{i}')
        save_probs(f'{folder}/img.npy',
                   np.asarray(v, np.float32).reshape(1, 1, 4) * 0.9)
        dirs.append(ProbDirMember(folder))
    gt = tmp_path / 'gt'
    gt.mkdir()
    cv2.imwrite(str(gt / 'img.png'), np.array([[1, 1, 0, 0]], np.uint8))
    return dirs, str(gt)


def test_hard_search_k_ints(members, tmp_path):
    dirs, gt = members
    ensemble = Ensemble(dirs, strategy='hard', gt_dir=gt, gt_format='label')
    result = ensemble_val(ensemble, str(tmp_path / 'all'), progress=False)
    assert result['k'] == [2] and isinstance(result['k'][0], int)
    assert result['thresholds'] == pytest.approx([1.5 / 3])
    assert result['dice'] == pytest.approx([1.0])
    # only k = 1 and 3 tried: k = 3 keeps pixel 0, k = 1 all 4; both have
    # Dice 2/3, and (2 + eps) / (3 + eps) > (4 + eps) / (6 + eps)
    result = ensemble_val(ensemble, str(tmp_path / 'some'), progress=False,
                          k_candidates=[1, 3])
    saved = json.loads((tmp_path / 'some' / 'thresholds.json').read_text())
    assert saved['k'] == [3]
    assert saved['search']['candidates'] == pytest.approx([0.5 / 3, 2.5 / 3])
    with pytest.raises(ValueError, match=r'k should be in \[1, E=3\]'):
        ensemble_val(ensemble, str(tmp_path / 'bad'), progress=False,
                     k_candidates=[4])
