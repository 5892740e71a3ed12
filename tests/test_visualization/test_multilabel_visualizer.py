# Copyright (c) mmseg_ext contributors. All rights reserved.
"""MultiLabelSegLocalVisualizer: exact colours on hand-built overlapping
masks, packed / unpacked ground truth with ignored pixels, MMSeg's path for
label maps, files as MMSeg writes them, and a real Runner test run with
``SegVisualizationHook(draw=True)`` on a multi-label hand-bone model."""
import glob
import itertools
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import MODELS, TRANSFORMS, VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import generate_hand_bone
from mmseg_ext.datasets.transforms.multilabel_transforms import \
    pipeline_packed_map
from mmseg_ext.utils.multilabel import (pack_multilabel, read_packed_label,
                                        unpack_multilabel)
from mmseg_ext.visualization import (MultiLabelSegLocalVisualizer,
                                     blend_multilabel_masks, class_crops,
                                     distinct_palette)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('a', 'b', 'c')
PALETTE = [[240, 0, 0], [0, 0, 240], [0, 240, 0]]
H, W = 6, 8
GREY = 100
_names = itertools.count()


def make_vis(**kwargs):
    """A visualizer through the registry (names are global: one each)."""
    cfg = dict(type='MultiLabelSegLocalVisualizer', alpha=0.5,
               with_contours=False)
    cfg.update(kwargs, name=f'mlvis{next(_names)}')
    vis = VISUALIZERS.build(cfg)
    vis.dataset_meta = dict(classes=CLASSES, palette=PALETTE)
    return vis


def image():
    return np.full((H, W, 3), GREY, dtype=np.uint8)


def masks3():
    """``a``: columns 0-3; ``b``: columns 2-5; ``c``: rows 0-2, columns
    3-4. Column 6-7: no class."""
    m = np.zeros((3, H, W), dtype=np.uint8)
    m[0, :, 0:4] = 1
    m[1, :, 2:6] = 1
    m[2, 0:3, 3:5] = 1
    return m


# (row, col) -> expected RGB: (1 - 0.5) * 100 + 0.5 * mean(colours)
ONE_A = ((4, 0), (170, 50, 50))
ONE_B = ((4, 5), (50, 50, 170))
TWO_AB = ((4, 2), (110, 50, 110))  # mean of red and blue: (120, 0, 120)
THREE = ((0, 3), (90, 90, 90))  # mean of red, blue, green: (80, 80, 80)
NONE = ((0, 7), (GREY, GREY, GREY))  # no class: the image, unchanged


def pred_sample(masks):
    return SegDataSample(
        pred_sem_seg=PixelData(data=torch.from_numpy(masks)),
        seg_logits=PixelData(data=torch.from_numpy(masks).float()))


def assert_colours(drawn, cases):
    for (r, c), rgb in cases:
        assert tuple(drawn[r, c]) == rgb, ((r, c), drawn[r, c], rgb)


# --- construction ---------------------------------------------------------
def test_built_through_registry_with_meta_in_order():
    vis = VISUALIZERS.build(
        dict(type='MultiLabelSegLocalVisualizer', name=f'mlvis{next(_names)}',
             classes=CLASSES, palette=PALETTE))
    assert isinstance(vis, MultiLabelSegLocalVisualizer)
    assert isinstance(vis, SegLocalVisualizer)
    # MMSeg 1.2.2's own __init__ swaps the two; ours sets them in order.
    assert vis.dataset_meta == dict(classes=CLASSES, palette=PALETTE)
    assert vis.alpha == 0.5 and vis.with_contours
    # classes alone get a generated palette of their length
    vis = make_vis()
    vis.set_dataset_meta(classes=('x', 'y'))
    assert vis.dataset_meta['palette'] == distinct_palette(2)


@pytest.mark.parametrize('kwargs', [
    dict(alpha=1.5), dict(alpha='0.5'), dict(contour_thickness=0),
    dict(ignore_index=1), dict(ignore_color=(0, 0)),
    dict(ignore_color=(0, 0, 256))
])
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError, match='should be'):
        MultiLabelSegLocalVisualizer(name=f'mlvis{next(_names)}', **kwargs)


def test_bad_with_contours_raises_type_error():
    with pytest.raises(TypeError, match='`with_contours` should be a bool'):
        MultiLabelSegLocalVisualizer(name=f'mlvis{next(_names)}',
                                     with_contours=1)


def test_distinct_palette():
    palette = distinct_palette(29)
    assert palette == distinct_palette(29)  # deterministic
    assert len({tuple(c) for c in palette}) == 29
    assert all(0 <= v <= 255 for c in palette for v in c)
    # the closest pair of the 29 colours is still well apart
    rgb = np.asarray(palette, dtype=float)
    dist = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    assert dist[~np.eye(29, dtype=bool)].min() > 30
    with pytest.raises(ValueError, match='`num_colors` should be'):
        distinct_palette(-1)


# --- drawing masks ----------------------------------------------------------
def test_overlapping_masks_exact_colours():
    vis = make_vis()
    drawn = vis._draw_sem_seg(image(), PixelData(data=masks3()), CLASSES,
                              PALETTE, with_labels=False)
    assert drawn.shape == (H, W, 3) and drawn.dtype == np.uint8
    assert_colours(drawn, [ONE_A, ONE_B, TWO_AB, THREE, NONE])
    assert (drawn[:, 6:] == GREY).all()
    assert np.array_equal(vis.get_image(), drawn)


def test_blend_function_exact_values_and_errors():
    out = blend_multilabel_masks(image(), masks3(), PALETTE, alpha=0.5)
    assert_colours(out, [ONE_A, ONE_B, TWO_AB, THREE, NONE])
    opaque = blend_multilabel_masks(image(), masks3(), PALETTE, alpha=1.0)
    assert tuple(opaque[THREE[0]]) == (80, 80, 80)  # the mean colour
    assert tuple(opaque[NONE[0]]) == NONE[1]
    with pytest.raises(ValueError, match='`masks` should have shape'):
        blend_multilabel_masks(image(), masks3()[:, :3], PALETTE)
    with pytest.raises(ValueError, match='`palette` should have C=3'):
        blend_multilabel_masks(image(), masks3(), PALETTE[:2])


def test_bool_and_numpy_masks_draw_the_same():
    vis = make_vis()
    ref = vis._draw_sem_seg(image(), PixelData(data=masks3()), CLASSES,
                            PALETTE, with_labels=False)
    for data in (torch.from_numpy(masks3()).bool(), masks3(),
                 torch.from_numpy(masks3()).long()):
        out = vis._draw_sem_seg(image(), PixelData(data=data), CLASSES,
                                PALETTE, with_labels=False)
        assert np.array_equal(out, ref), data.dtype


def test_contours_outline_each_class_in_its_colour():
    vis = make_vis(with_contours=True)
    masks = np.zeros((3, 10, 10), dtype=np.uint8)
    masks[0, 2:7, 2:7] = 1
    drawn = vis._draw_sem_seg(np.full((10, 10, 3), GREY, np.uint8),
                              PixelData(data=masks), CLASSES, PALETTE,
                              with_labels=False)
    border = np.zeros((10, 10), bool)
    border[2:7, 2:7] = True
    border[3:6, 3:6] = False
    assert (drawn[border] == PALETTE[0]).all()  # outline: pure colour
    assert (drawn[3:6, 3:6] == (170, 50, 50)).all()  # inside: blended
    outside = masks[0] == 0
    assert (drawn[outside] == GREY).all()


def test_palette_generated_when_absent_or_too_short():
    vis = make_vis()
    masks = np.zeros((4, H, W), dtype=np.uint8)
    masks[3, 0, 0] = 1
    drawn = vis._draw_sem_seg(image(), PixelData(data=masks), CLASSES,
                              PALETTE, with_labels=False)  # 3 colours, C=4
    expected = (np.array([GREY] * 3) + distinct_palette(4)[3]) / 2
    assert tuple(drawn[0, 0]) == tuple(np.rint(expected).astype(int))


def test_class_names_centred_on_the_largest_component():
    vis = make_vis()
    masks = np.zeros((3, 40, 40), dtype=np.uint8)
    masks[0, 0, 0:2] = 1  # small component
    masks[0, 20:30, 10:31] = 1  # largest: centroid (x, y) = (20, 24.5)
    crop = class_crops(masks)[0]
    assert tuple(vis._largest_component_loc(crop)) == (20, 24)
    img = np.full((40, 40, 3), GREY, np.uint8)
    plain = vis._draw_sem_seg(img, PixelData(data=masks), CLASSES, PALETTE,
                              with_labels=False)
    named = vis._draw_sem_seg(img, PixelData(data=masks), CLASSES, PALETTE,
                              with_labels=True)
    rows, cols = np.nonzero((named != plain).any(-1))
    # MMSeg's box (class colour, black border) centred there
    assert abs((cols.min() + cols.max()) / 2 - 20) <= 1
    assert abs((rows.min() + rows.max()) / 2 - 24) <= 1
    assert tuple(named[rows.min(), cols.min()]) == (0, 0, 0)
    assert np.array_equal(named[:2, :4], plain[:2, :4])  # small one: none


def test_binary_mask_c1_uses_the_same_path():
    vis = make_vis()
    vis.dataset_meta = dict(classes=('building', ), palette=[[250, 250, 0]])
    mask = np.zeros((1, H, W), np.uint8)
    mask[0, 1:3, 1:3] = 1
    drawn = vis._draw_sem_seg(image(), PixelData(data=mask), ('building', ),
                              [[250, 250, 0]], with_labels=False)
    assert (drawn[1:3, 1:3] == (175, 175, 50)).all()
    assert (drawn[mask[0] == 0] == GREY).all()


def test_image_resized_to_the_masks():
    vis = make_vis()
    big = np.full((2 * H, 2 * W, 3), GREY, np.uint8)
    drawn = vis._draw_sem_seg(big, PixelData(data=masks3()), CLASSES,
                              PALETTE, with_labels=False)
    assert drawn.shape == (H, W, 3)
    assert_colours(drawn, [ONE_A, TWO_AB, NONE])


# --- ground truth -----------------------------------------------------------
def packed_gt_sample(num_classes=3):
    """A sample straight from the pipeline: ``PackMultiLabelSegInputs`` of
    ``masks3()`` with row 5 ignored (valid bit clear)."""
    masks = np.zeros((num_classes, H, W), np.uint8)
    masks[:3] = masks3()
    ignore = np.zeros((H, W), bool)
    ignore[5] = True
    packed = pack_multilabel(masks, ignore)
    if packed.shape[-1] == 2:
        packed = pipeline_packed_map(packed)  # (H, W, 3) in the pipeline
    pack = TRANSFORMS.build(
        dict(type='PackMultiLabelSegInputs', num_classes=num_classes))
    out = pack.transform(dict(img=image(), gt_seg_map=packed))
    return out


GT_CASES = [ONE_A, ONE_B, TWO_AB, THREE, NONE]


@pytest.mark.parametrize('unpacked', [False, True],
                         ids=['packed-int16', 'unpacked-by-preprocessor'])
def test_gt_from_packed_label_with_ignored_region(unpacked):
    out = packed_gt_sample()
    sample = out['data_samples']
    assert sample.gt_sem_seg.data.dtype == torch.int16
    if unpacked:  # what SegVisualizationHook gets after the model ran
        pre = MODELS.build(
            dict(type='MultiLabelSegDataPreProcessor', num_classes=3))
        sample = pre(dict(inputs=[out['inputs']], data_samples=[sample]),
                     training=False)['data_samples'][0]
        assert sample.gt_sem_seg.data.dtype == torch.uint8
    vis = make_vis()
    drawn = vis._draw_sem_seg(image(), sample.gt_sem_seg, CLASSES, PALETTE,
                              with_labels=False, num_classes=3)
    assert_colours(drawn, GT_CASES)
    # ignored row: neutral grey (128) blended, even where classes were
    assert (drawn[5] == (114, 114, 114)).all()
    vis.ignore_color = None  # or left as the image
    drawn = vis._draw_sem_seg(image(), sample.gt_sem_seg, CLASSES, PALETTE,
                              with_labels=False, num_classes=3)
    assert (drawn[5] == GREY).all()


def test_gt_29_classes_packed_in_pipeline_layout():
    """K = 2 channels carried as 3 in the pipeline; unpacked with the
    sample's num_classes, as the numpy unpacker does."""
    out = packed_gt_sample(num_classes=29)
    sample = out['data_samples']
    assert tuple(sample.gt_sem_seg.data.shape) == (2, H, W)
    # and the 3-channel pipeline form, as another transform might leave it
    three = torch.cat([sample.gt_sem_seg.data,
                       torch.zeros((1, H, W), dtype=torch.int16)])
    vis = make_vis()
    vis.dataset_meta = dict(classes=[str(k) for k in range(29)])
    ref_masks = unpack_multilabel(
        sample.gt_sem_seg.data.numpy().view(np.uint16).transpose(1, 2, 0),
        29)
    ref = vis._draw_sem_seg(image(), PixelData(data=ref_masks),
                            vis.dataset_meta['classes'], None, False)
    for data in (sample.gt_sem_seg.data, three):
        drawn = vis._draw_sem_seg(image(), PixelData(data=data),
                                  vis.dataset_meta['classes'], None, False,
                                  num_classes=29)
        assert np.array_equal(drawn, ref)
    assert (ref[5] == 114).all() and (ref[0, 7] == GREY).all()


def test_packed_label_of_another_class_count_raises():
    sample = packed_gt_sample(num_classes=29)['data_samples']
    vis = make_vis()
    with pytest.raises(ValueError, match='C=3 classes should have shape'):
        vis._draw_sem_seg(image(), sample.gt_sem_seg, CLASSES, PALETTE,
                          num_classes=3)


# --- label maps: MMSeg's path ----------------------------------------------
def mmseg_vis():
    vis = SegLocalVisualizer(name=f'mlvis{next(_names)}', alpha=0.5)
    vis.dataset_meta = dict(classes=CLASSES, palette=PALETTE)
    return vis


@pytest.mark.parametrize('dtype', [torch.int64, torch.uint8])
def test_label_map_goes_through_mmseg_path(dtype, tmp_path):
    label = torch.zeros((1, H, W), dtype=dtype)
    label[0, :, 3:] = 1
    label[0, 2:4, 5:] = 2
    sample = SegDataSample(gt_sem_seg=PixelData(data=label),
                           pred_sem_seg=PixelData(data=label.flip(-1)))
    ours, theirs = str(tmp_path / 'ours.png'), str(tmp_path / 'theirs.png')
    make_vis().add_datasample('x', image(), sample, out_file=ours)
    mmseg_vis().add_datasample('x', image(), sample, out_file=theirs)
    assert np.array_equal(mmcv.imread(ours), mmcv.imread(theirs))


def test_mmseg_visualizer_misreads_masks():
    """Why this class exists: MMSeg's reads channel 0 as a label map, so a
    pixel of no class is painted class 0 (and class 1 where `a` is set)."""
    mmseg_drawn = mmseg_vis()._draw_sem_seg(
        image(), PixelData(data=torch.from_numpy(masks3())), CLASSES,
        PALETTE, with_labels=False)
    assert tuple(mmseg_drawn[NONE[0]]) == ONE_A[1]  # a's colour
    assert tuple(mmseg_drawn[ONE_A[0]]) == ONE_B[1]  # b's colour
    ours = make_vis()._draw_sem_seg(image(), PixelData(data=masks3()),
                                    CLASSES, PALETTE, with_labels=False)
    assert tuple(ours[NONE[0]]) == NONE[1]


# --- add_datasample ----------------------------------------------------------
def test_add_datasample_writes_gt_and_pred_side_by_side(tmp_path):
    out = packed_gt_sample()
    sample = out['data_samples']
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(masks3()))
    vis = make_vis()
    out_file = str(tmp_path / 'sub' / 'vis.png')
    vis.add_datasample('x', image(), sample, out_file=out_file,
                       with_labels=False)
    drawn = mmcv.imread(out_file, channel_order='rgb')
    assert drawn.shape == (H, 2 * W, 3)
    gt, pred = drawn[:, :W], drawn[:, W:]
    assert_colours(gt, GT_CASES)
    assert (gt[5] == 114).all()
    assert_colours(pred, [ONE_A, ONE_B, TWO_AB, THREE, NONE])
    assert tuple(pred[5, 0]) == ONE_A[1]  # no ignore in predictions
    # only one side
    vis.add_datasample('x', image(), sample, draw_gt=False,
                       out_file=out_file, with_labels=False)
    assert np.array_equal(mmcv.imread(out_file, channel_order='rgb'), pred)


def test_add_datasample_goes_to_the_backends(tmp_path):
    vis = VISUALIZERS.build(
        dict(type='MultiLabelSegLocalVisualizer', name=f'mlvis{next(_names)}',
             vis_backends=[dict(type='LocalVisBackend')],
             save_dir=str(tmp_path)))
    vis.dataset_meta = dict(classes=CLASSES, palette=PALETTE)
    vis.add_datasample('val_img.png', image(), pred_sample(masks3()),
                       step=3)
    files = glob.glob(str(tmp_path / 'vis_data' / 'vis_image' / '*.png'))
    assert [osp.basename(f) for f in files] == ['val_img.png_3.png']
    assert cv2.imread(files[0]).shape == (H, W, 3)


def test_add_datasample_needs_classes():
    vis = make_vis()
    vis.dataset_meta = dict()
    with pytest.raises(ValueError, match='should have `classes`'):
        vis.add_datasample('x', image(), pred_sample(masks3()))


# --- a real Runner test run ------------------------------------------------
@pytest.fixture(scope='module')
def hand_bone_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('hand_bone_vis'))
    generate_hand_bone(root, num_train_ids=2, num_test_ids=0, size=128,
                       seed=3)
    convert_hand_bone(root, num_folds=2, show_progress=False)
    return root


def tiny_hand_bone_cfg(data_root, work_dir):
    """The SegFormer hand-bone config (its visualizer from
    configs/_base_/multilabel_runtime.py), shrunk to a test-only run."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'segformer',
                 'segformer_mit-b0_1xb8-20k_handbone-512x512.py'))
    assert cfg.visualizer.type == 'MultiLabelSegLocalVisualizer'
    model = cfg.model
    model.pretrained = None
    model.backbone.update(init_cfg=None, embed_dims=8,
                          num_layers=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          drop_path_rate=0.0)
    model.decode_head.head.update(in_channels=[8, 8, 8, 8], channels=8)
    model.data_preprocessor.size = (64, 64)
    loader = cfg.test_dataloader
    loader.update(num_workers=0, persistent_workers=False)
    loader.dataset.data_root = data_root
    for t in loader.dataset.pipeline:
        if t.type == 'Resize':
            t.scale = (64, 64)
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler', 'val_dataloader', 'val_cfg',
                'val_evaluator'):
        cfg[key] = None
    cfg.custom_hooks = []
    cfg.default_hooks.visualization = dict(
        type='SegVisualizationHook', draw=True, interval=1)
    # names are process-global; `tools/test.py --show-dir D` sets save_dir
    cfg.visualizer.update(name=f'mlvis{next(_names)}',
                          save_dir=osp.join(work_dir, 'show'))
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    return cfg


def test_runner_test_run_writes_visualisations(hand_bone_root, tmp_path,
                                               monkeypatch):
    # yapf formats the config for the log (seconds); plain text is enough
    monkeypatch.setattr(Config, 'pretty_text',
                        property(lambda self: self.text))
    cfg = tiny_hand_bone_cfg(hand_bone_root, str(tmp_path))
    runner = Runner.from_cfg(cfg)
    assert type(runner.visualizer) is MultiLabelSegLocalVisualizer
    runner.test()
    dataset = runner.test_dataloader.dataset
    files = sorted(
        glob.glob(str(tmp_path / 'show' / 'vis_data' / 'vis_image' / '*')))
    assert len(files) == len(dataset) >= 2
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        name = f'test_{osp.basename(info["img_path"])}_0.png'
        path = str(tmp_path / 'show' / 'vis_data' / 'vis_image' / name)
        drawn = mmcv.imread(path, channel_order='rgb')
        img = mmcv.imread(info['img_path'], channel_order='rgb')
        h, w = img.shape[:2]
        assert drawn.shape == (h, 2 * w, 3)  # ground truth | prediction
        # Ground truth (left), drawn by the hook from the unpacked target
        # at the original size: as drawn straight from the label file.
        masks = unpack_multilabel(
            read_packed_label(info['seg_map_path'], 29), 29)
        gt = drawn[:, :w]
        vis = runner.visualizer
        assert len(vis.dataset_meta['classes']) == 29
        assert np.array_equal(
            gt, vis._draw_sem_seg(img, PixelData(data=masks),
                                  vis.dataset_meta['classes'],
                                  vis.dataset_meta['palette']))
        # pixels of no bone keep the X-ray (but those under the class-name
        # boxes), every bone pixel is coloured (MMSeg's colours them all)
        no_bone = (masks == 0).all(0)
        same = (gt == img).all(-1)
        assert same[no_bone].mean() > 0.5
        assert not same[~no_bone].any()
