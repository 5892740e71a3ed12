# MMSeg's default runtime for the multi-label (hand-bone) and binary
# (building) configs: the same, except the visualizer, which draws their
# (C, H, W) overlapping masks and packed ground truth (MMSeg's
# SegLocalVisualizer reads one (1, H, W) label map; ordinary label maps
# still go through it). Used by `SegVisualizationHook(draw=True)` and
# `tools/test.py --show-dir`.
_base_ = ['mmseg::_base_/default_runtime.py']
visualizer = dict(
    type='MultiLabelSegLocalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
