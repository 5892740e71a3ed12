# Copyright (c) mmseg_ext contributors. All rights reserved.
"""``mmseg_ext.utils`` exports what the README promises, one object each."""
import mmseg_ext.utils as utils


def test_readme_helpers_are_exported():
    for name in ('soft_vote', 'hard_vote', 'classwise_select',
                 'ThresholdSearch', 'select_postprocess',
                 'compute_class_weights',
                 'rle_encode', 'rle_decode', 'pack_multilabel',
                 'unpack_multilabel', 'dice_from_counts', 'iou_from_counts',
                 'image_counts', 'as_unpacked', 'quantize_probs',
                 'remove_small_components', 'new_figure', 'save_figure'):
        assert name in utils.__all__, name
        assert callable(getattr(utils, name)), name
    assert len(set(utils.__all__)) == len(utils.__all__)
    for name in utils.__all__:
        assert hasattr(utils, name), name


def test_one_implementation_of_each_rule():
    from mmseg_ext.models.segmentors import multilabel_encoder_decoder
    from mmseg_ext.utils import dice, ensemble, postprocess, threshold_search
    assert multilabel_encoder_decoder.remove_small_components is \
        postprocess.remove_small_components
    assert threshold_search.quantize_probs is ensemble.quantize_probs
    assert utils.image_counts is dice.image_counts
    assert postprocess.DICE_EPS == dice.DICE_EPS == 1e-4


def test_remove_small_components_nonzero_is_positive():
    """The segmentor's and the plan's copies agreed on {0, 1}/bool masks;
    the one left reads any nonzero value as positive (the old plan copy
    cast to uint8 first, so 256 wrapped to 0)."""
    import numpy as np
    mask = np.zeros((6, 6), np.int16)
    mask[0, :3] = 256
    mask[4:, 4:] = 2
    mask[2, 5] = 1
    out = utils.remove_small_components(mask, 3)
    assert out.dtype == np.uint8 and out.sum() == 7
    assert out[0, :3].all() and out[4:, 4:].all() and out[2, 5] == 0
    np.testing.assert_array_equal(
        utils.remove_small_components(mask.astype(bool), 3), out)
    assert utils.remove_small_components(np.zeros((3, 3)), 2).sum() == 0
    assert utils.keep_largest_component(mask).sum() == 4
