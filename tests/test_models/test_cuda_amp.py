# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Mixed precision and inference on a CUDA device.

Every test here needs CUDA and is skipped without it (CPU CI). They check
what only a GPU exercises:

- the losses under ``torch.autocast('cuda', torch.float16)`` on fp16 logits
  of a real hand-bone size, ``(2, 29, 512, 512)``: float32, finite, equal to
  the float32 CPU result, with finite gradients that survive
  ``GradScaler``'s loss scale in fp16;
- real ``Runner`` training with every ``-amp`` config of the repo
  (``AmpOptimWrapper``), and ``tools/train.py --amp``;
- Gaussian-blended slide inference of ``MultiLabelEncoderDecoder``: the
  same probabilities on CUDA as on CPU.
"""
import copy
import glob
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import generate_hand_bone
from mmseg_ext.engine.launch import check_amp_config, enable_amp

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='needs a CUDA device (fp16 autocast, AmpOptimWrapper and GPU '
    'inference); torch.cuda.is_available() is False')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The BraTS -amp configs need converted BraTS cases: they train on CUDA in
# tests/test_configs/test_brats_configs.py.
AMP_CONFIGS = sorted(p for p in glob.glob(
    osp.join(ROOT, 'configs', '*', '*-amp*.py')) if '_brats-' not in p)
AMP_IDS = [osp.basename(p)[:-3] for p in AMP_CONFIGS]
FP32_QUICKSTART = osp.join(ROOT, 'configs', 'segformer',
                           'segformer_mit-b0_1xb8-1k_synthimb-128x128.py')
ML_BASE_MODEL = osp.join(ROOT, 'configs', '_base_', 'models',
                         'segformer_mit-b0_multilabel.py')

# --- losses under autocast --------------------------------------------------
# Hand-bone logits at 512x512: N * C * H * W = 15.2M class-pixels and
# N * H * W = 524k pixels, both far above the largest fp16 number (65504),
# so any sum over pixels done in fp16 overflows to inf.
N, C, H, W = 2, 29, 512, 512
# mmengine's AmpOptimWrapper(loss_scale='dynamic') is a GradScaler, whose
# first scale is 2 ** 16; the fp16 gradients are those of the scaled loss.
LOSS_SCALE = 2.0**16
# Loss tolerance: both sides compute in float32 on the same fp16-rounded
# logits (the losses cast to float first; autocast keeps sum, softmax, exp,
# log and BCE in float32), so only the reduction order over up to 15M terms
# and the CUDA transcendental functions (<= 2 ulp) differ: a relative error
# of ~1e-6. 1e-4 leaves margin, and is 10x below what one fp16 rounding
# (2 ** -11 = 4.9e-4) would give.
LOSS_RTOL = 1e-4
# Gradient tolerance: the gradient of the scaled loss is rounded to fp16
# (relative 2 ** -11; below 2 ** -14 fp16 is subnormal, an absolute
# 2 ** -25 / LOSS_SCALE after unscaling), hence 2e-3 relative plus 1e-3 of
# the largest gradient.
GRAD_RTOL, GRAD_ATOL_FRAC = 2e-3, 1e-3
CLASS_WEIGHT = [1.0 + 0.25 * c for c in range(C)]

LOSS_CASES = [
    # (id, loss config, target kind)
    ('soft_dice-multiclass', dict(type='SoftDiceLoss', mode='multiclass'),
     'multiclass'),
    ('soft_dice-multiclass-per_image-weighted',
     dict(type='SoftDiceLoss', mode='multiclass', per_image=True,
          class_weight=CLASS_WEIGHT), 'multiclass'),
    ('soft_dice-binary', dict(type='SoftDiceLoss', mode='binary'), 'binary'),
    ('soft_dice-multilabel', dict(type='SoftDiceLoss', mode='multilabel'),
     'multilabel'),
    ('soft_dice-multilabel-squared-smooth0',
     dict(type='SoftDiceLoss', mode='multilabel', squared_denominator=True,
          smooth=0.0), 'multilabel'),
    ('generalized_dice-multiclass',
     dict(type='GeneralizedDiceLoss', mode='multiclass'), 'multiclass'),
    ('generalized_dice-binary',
     dict(type='GeneralizedDiceLoss', mode='binary'), 'binary'),
    ('generalized_dice-multilabel-per_image',
     dict(type='GeneralizedDiceLoss', mode='multilabel', per_image=True),
     'multilabel'),
    ('ml_bce', dict(type='MultiLabelBCELoss'), 'multilabel'),
    ('ml_bce-class_weight-pos_weight',
     dict(type='MultiLabelBCELoss', class_weight=CLASS_WEIGHT,
          pos_weight=[2.0] * C), 'multilabel'),
    ('ml_focal', dict(type='MultiLabelFocalLoss', gamma=2.0, alpha=0.25),
     'multilabel'),
    ('ml_focal-binary', dict(type='MultiLabelFocalLoss'), 'binary'),
    ('softmax_focal', dict(type='SoftmaxFocalLoss', gamma=2.0),
     'multiclass'),
    ('softmax_focal-gamma0-weighted',
     dict(type='SoftmaxFocalLoss', gamma=0.0, class_weight=CLASS_WEIGHT),
     'multiclass'),
]


@pytest.fixture(scope='module')
def loss_inputs():
    """fp16-representable logits and imbalanced targets, on the CPU.

    Class c is present in ~``0.3 / (c + 1)`` of the pixels (hand bones span
    two orders of magnitude), 5 % of the entries are ignored (255), and the
    logits lean towards the target so the losses are neither 0 nor maximal.
    """
    gen = torch.Generator().manual_seed(0)
    rate = torch.tensor([0.3 / (c + 1) for c in range(C)]).view(1, C, 1, 1)
    multilabel = (torch.rand(N, C, H, W, generator=gen) < rate).to(
        torch.uint8)
    ml_logits = (multilabel.float() * 2 - 1) * 1.5 + torch.randn(
        N, C, H, W, generator=gen) * 2
    multilabel[torch.rand(N, C, H, W, generator=gen) < 0.05] = 255

    freq = rate.flatten() / rate.sum()
    multiclass = torch.multinomial(freq, N * H * W, replacement=True,
                                   generator=gen).view(N, H, W)
    mc_logits = torch.randn(N, C, H, W, generator=gen) * 2
    mc_logits.scatter_add_(1, multiclass.unsqueeze(1),
                           torch.full((N, 1, H, W), 3.0))
    multiclass[torch.rand(N, H, W, generator=gen) < 0.05] = 255

    binary = multilabel[:, 0].clone()
    bin_logits = ml_logits[:, :1].clone()
    return dict(
        multilabel=(ml_logits.half(), multilabel),
        multiclass=(mc_logits.half(), multiclass),
        binary=(bin_logits.half(), binary))


@pytest.mark.parametrize(
    'loss_cfg,kind', [case[1:] for case in LOSS_CASES],
    ids=[case[0] for case in LOSS_CASES])
def test_loss_under_fp16_autocast_matches_fp32_cpu(loss_cfg, kind,
                                                   loss_inputs):
    logits16, target = loss_inputs[kind]
    valid = int((target != 255).sum())
    assert valid > torch.finfo(torch.float16).max  # sums overflow in fp16
    loss_fn = MODELS.build(copy.deepcopy(loss_cfg))

    x = logits16.cuda().requires_grad_()
    with torch.autocast('cuda', dtype=torch.float16):
        loss = loss_fn(x, target.cuda())
    assert loss.dtype == torch.float32, loss.dtype
    assert loss.dim() == 0 and torch.isfinite(loss), loss
    (loss * LOSS_SCALE).backward()
    grad = x.grad
    assert grad.dtype == torch.float16
    assert torch.isfinite(grad).all(), 'scaled fp16 gradient overflows'
    assert grad.abs().max() > 0, 'scaled fp16 gradient underflows to 0'

    ref_x = logits16.float().requires_grad_()
    ref = loss_fn(ref_x, target)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=LOSS_RTOL, abs=1e-6)
    ref_grad = ref_x.grad
    torch.testing.assert_close(
        grad.float().cpu() / LOSS_SCALE,
        ref_grad,
        rtol=GRAD_RTOL,
        atol=GRAD_ATOL_FRAC * ref_grad.abs().max().item())


# --- real Runner training with the -amp configs ----------------------------
TRAIN_SIZE = 128  # training crop side (the configs' crops scaled to it)
TOY_SIZE = 64  # side of the toy_data_root images (tests/conftest.py)


@pytest.fixture(scope='module')
def no_yapf():
    """Runner formats the config through yapf (seconds per config)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(Config, 'pretty_text', property(lambda self: self.text))
    yield
    mp.undo()


@pytest.fixture(scope='module')
def hand_bone_root(tmp_path_factory):
    """3 patients (6 X-rays of 256x256): 4 train, 2 val images in fold 0."""
    root = str(tmp_path_factory.mktemp('hand_bone_amp'))
    generate_hand_bone(root, num_train_ids=3, num_test_ids=0, size=256,
                       seed=3)
    convert_hand_bone(root, num_folds=3, show_progress=False)
    return root


def _scale_sizes(node, factor):
    """Multiply every ``(h, w)`` size of pipelines / model by ``factor``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('scale', 'crop_size', 'stride', 'size') and \
                    isinstance(value, (tuple, list)) and len(value) == 2:
                node[key] = tuple(max(16, int(v * factor)) for v in value)
            else:
                _scale_sizes(value, factor)
    elif isinstance(node, list):
        for value in node:
            _scale_sizes(value, factor)


def _no_pretrained(model_cfg):
    """The configs keep the real checkpoint URLs; tests never download."""
    model_cfg.pretrained = None
    backbone = model_cfg.backbone
    if 'init_cfg' in backbone:
        backbone.init_cfg = None
    if backbone.type == 'TIMMBackbone':
        backbone.pretrained = False


class _RecordHook(Hook):
    """Parameters before the first step; the loss dict of every step."""

    priority = 'VERY_LOW'

    def __init__(self):
        self.before = None
        self.outputs = []

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model,
                                               'module') else runner.model
        self.before = {
            k: v.detach().clone()
            for k, v in model.named_parameters() if v.requires_grad
        }

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.outputs.append({k: float(v) for k, v in outputs.items()})


def _amp_cfg(path, data_root, work_dir, max_iters):
    cfg = Config.fromfile(path)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    crop = cfg.model.data_preprocessor.size[0]
    hand_bone = 'handbone' in osp.basename(path)
    # Crops no larger than the images: SegFormer's first LayerNorm sees
    # zero-variance tokens on zero-padded input, which multiplies the
    # gradient by 1/sqrt(eps) and overflows fp16 at any loss scale (seen
    # on an H100 with the 64x64 toy images in a 128x128 crop).
    factor = (TRAIN_SIZE if hand_bone else TOY_SIZE) / crop
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.data_root = data_root
        _scale_sizes(loader.dataset.pipeline, factor)
    if hand_bone:
        cfg.train_dataloader.batch_size = 2
    _no_pretrained(cfg.model)
    _scale_sizes(cfg.model, factor)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler = [
        dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0,
             end=max_iters)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    return cfg


@pytest.mark.parametrize('path', AMP_CONFIGS, ids=AMP_IDS)
def test_amp_config_trains_on_cuda(path, hand_bone_root, toy_data_root,
                                   tmp_path, no_yapf):
    """A few real AMP iterations of each ``-amp`` config (real networks,
    no pretrained weights, crops scaled down to 128) and its validation."""
    data_root = hand_bone_root if 'handbone' in path else toy_data_root
    max_iters = 6  # the dynamic loss scale may skip the first steps
    cfg = _amp_cfg(path, data_root, tmp_path, max_iters)
    runner = Runner.from_cfg(cfg)
    record = _RecordHook()
    runner.register_hook(record)
    runner.train()

    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    scale = runner.optim_wrapper.loss_scaler.get_scale()
    assert math.isfinite(scale) and scale > 0
    assert len(record.outputs) == max_iters
    for i, outputs in enumerate(record.outputs):
        assert any(k.endswith('loss') for k in outputs), outputs
        bad = {k: v for k, v in outputs.items() if not math.isfinite(v)}
        assert not bad, f'iteration {i + 1}: non-finite {bad}'
    model = runner.model.module if hasattr(runner.model,
                                           'module') else runner.model
    assert next(model.parameters()).is_cuda
    after = dict(model.named_parameters())
    changed = [k for k, v in record.before.items()
               if not torch.equal(v, after[k].detach())]
    # GradScaler skips the steps whose scaled gradients overflow; at least
    # one of the steps must have updated the weights.
    assert changed, f'no parameter changed in {max_iters} AMP iterations ' \
        f'(loss scale now {scale})'
    metrics = runner.message_hub.log_scalars
    assert np.isfinite(metrics['train/loss'].current())
    # MultiLabelDiceMetric gives a fraction, MMSeg's IoUMetric a percentage
    mdice = metrics['val/mDice'].current()
    assert 0.0 <= mdice <= (1.0 if 'handbone' in path else 100.0), mdice


def test_enable_amp_on_cuda():
    cfg = Config.fromfile(FP32_QUICKSTART)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    enable_amp(cfg)  # must not raise where CUDA exists
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    check_amp_config(cfg)
    enable_amp(cfg)  # already enabled: a warning, no change
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'


def test_train_py_amp_flag_on_cuda(toy_data_root, tmp_path):
    """``tools/train.py CONFIG --amp`` trains with AmpOptimWrapper."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    options = [
        f'{key}.dataset.data_root={toy_data_root}'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + [
        f'{key}.{opt}' for key in ('train_dataloader', 'val_dataloader')
        for opt in ('num_workers=0', 'persistent_workers=False')
    ] + [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.logger.interval=1'
    ]
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', FP32_QUICKSTART, '--amp',
         '--work-dir', str(tmp_path), '--cfg-options', *options],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert '--amp needs a CUDA device' not in output
    assert 'Iter(train) [2/2]' in output, output[-4000:]
    dumped = osp.join(str(tmp_path), osp.basename(FP32_QUICKSTART))
    with open(dumped) as f:
        text = f.read()
    assert 'AmpOptimWrapper' in text and 'dynamic' in text


# --- slide inference: CUDA equals CPU ---------------------------------------
@pytest.fixture
def no_tf32():
    """Full fp32 convolutions and matmuls on the GPU (TF32 keeps 10 bits of
    mantissa: a precision choice of cuDNN, not what is tested here)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    yield
    cudnn.allow_tf32, matmul.allow_tf32 = saved


def _multilabel_segformer(test_cfg):
    init_default_scope('mmseg')
    cfg = Config.fromfile(ML_BASE_MODEL).model
    _no_pretrained(cfg)
    cfg.test_cfg = ConfigDict(test_cfg)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg))
    model.init_weights()
    with torch.no_grad():
        # conv_seg starts at std 0.01: logits ~0, probabilities ~0.5 all
        # over. Spread them over (0, 1) (std ~0.4), so that 1e-4 is a
        # strict tolerance; fp32 vs fp64 on CPU differ by ~3e-6 here.
        model.decode_head.head.conv_seg.weight.mul_(30.0)
    return model.eval()


def test_gaussian_slide_inference_cuda_equals_cpu(no_tf32):
    """Same weights, same image: the Gaussian-blended probabilities (flip
    TTA on) agree to 1e-4; the border windows overlap unevenly (400 x 464
    with crop 128, stride 96)."""
    model = _multilabel_segformer(
        dict(mode='slide', crop_size=(128, 128), stride=(96, 96),
             blend='gaussian', flip=True))
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(1, 3, 400, 464, generator=gen)
    metas = [dict(img_shape=(400, 464), ori_shape=(400, 464))]
    with torch.no_grad():
        cpu = model.predict_probs(inputs, metas)
        gpu_model = copy.deepcopy(model).cuda()
        gpu = gpu_model.predict_probs(inputs.cuda(), metas)
    assert gpu.is_cuda and gpu.dtype == torch.float32
    assert gpu.shape == (1, C, 400, 464)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)
    assert 0.0 <= float(gpu.min()) and float(gpu.max()) <= 1.0
    # the blend is really applied on the GPU path (uniform differs)
    gpu_model.test_cfg.blend = 'uniform'
    with torch.no_grad():
        uniform = gpu_model.predict_probs(inputs.cuda(), metas)
    assert (uniform - gpu).abs().max() > 1e-2
