# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Cost of the label / weight value checks of the losses, on the CPU.

The losses check that non-ignored labels lie in ``[0, C)`` (``{0, 1}`` for
the sigmoid losses) and that per-pixel weights are finite and ``>= 0``
(:func:`mmseg_ext.models.losses.utils.check_values`): one ``aminmax`` pass
over the labels, which already have their ignored entries replaced by 0 for
the loss itself, plus one over the weights when there are any. This script
times a training-style call, forward and backward of the loss, with the
checks (``MMSEG_EXT_LOSS_CHECKS=sync``, what ``auto`` does on CPU) and
without (``off``), interleaved, and prints the median of each and their
ratio; and the check alone (``check_values``) against the whole call.

Cases (the sizes of the brief):

- multilabel: ``MultiLabelBCELoss`` on ``(8, 29, 512, 512)`` logits and
  uint8 ``{0, 1, 255}`` targets (5 % ignored), the hand-bone head;
- softmax: ``SoftmaxFocalLoss`` on ``(8, 5, 512, 512)`` logits and long
  ``(8, 512, 512)`` labels (5 % ignored).

Measured on 2 CPU cores shared with other jobs (torch 2.14, median of 7):
multilabel 6636 / 6616 ms, ratio 1.003 (the check alone 17 ms, 0.3 % of
the call); softmax 980 / 991 ms, ratio 0.989 (16 ms, 1.6 %): within noise.
The decision this supports is in the docstring of
:func:`mmseg_ext.models.losses.utils.resolve_check`. On CUDA the cost that
matters is the host sync of reading the result back, which this CPU script
cannot show; there the checks are synchronous only at a loss's first
forward (or with ``MMSEG_EXT_LOSS_CHECKS=sync``).

Prints the timings and ratios; nothing is asserted.

Example::

    python benchmarks/bench_loss_checks.py --repeats 5
    python benchmarks/bench_loss_checks.py --quick   # small tensors
"""
import argparse
import os
import statistics
import time

import torch
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401
from mmseg_ext.models.losses.utils import CHECKS_ENV, check_values


def make_inputs(kind, shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    logits = torch.randn(shape, generator=gen)
    if kind == 'multilabel':
        target = torch.randint(0, 2, shape, generator=gen, dtype=torch.uint8)
        target[torch.rand(shape, generator=gen) < 0.05] = 255
    else:
        target = torch.randint(0, c, (n, h, w), generator=gen)
        target[torch.rand((n, h, w), generator=gen) < 0.05] = 255
    return logits, target


def time_call(loss_fn, logits, target, mode):
    os.environ[CHECKS_ENV] = mode
    x = logits.detach().requires_grad_()
    start = time.perf_counter()
    loss_fn(x, target).backward()
    return time.perf_counter() - start


def time_check(kind, logits, target):
    start = time.perf_counter()
    valid = target != 255
    masked = torch.where(valid, target, 0)
    mask_s = time.perf_counter() - start
    start = time.perf_counter()
    check_values(masked, 2 if kind == 'multilabel' else logits.shape[1],
                 None, 255, kind == 'multilabel', 'sync')
    return time.perf_counter() - start, mask_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--quick', action='store_true',
                        help='(2, C, 64, 64) tensors, for a smoke run')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = (2, 64, 64) if args.quick else (8, 512, 512)
    cases = [
        ('multilabel', dict(type='MultiLabelBCELoss'),
         (size[0], 29) + size[1:]),
        ('softmax', dict(type='SoftmaxFocalLoss'), (size[0], 5) + size[1:]),
    ]
    saved = os.environ.get(CHECKS_ENV)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'median of {args.repeats} interleaved runs of forward + backward')
    try:
        for kind, cfg, shape in cases:
            loss_fn = MODELS.build(cfg)
            logits, target = make_inputs(kind, shape)
            time_call(loss_fn, logits, target, 'off')  # warm-up
            times = dict(sync=[], off=[])
            checks, masks = [], []
            for i in range(args.repeats):
                order = ('sync', 'off') if i % 2 == 0 else ('off', 'sync')
                for mode in order:
                    times[mode].append(
                        time_call(loss_fn, logits, target, mode))
                check_s, mask_s = time_check(kind, logits, target)
                checks.append(check_s)
                masks.append(mask_s)
            with_s = statistics.median(times['sync'])
            without_s = statistics.median(times['off'])
            check_s = statistics.median(checks)
            print(f'{kind:10s} {cfg["type"]:18s} {tuple(shape)}: with checks '
                  f'{with_s * 1e3:8.1f} ms, without {without_s * 1e3:8.1f} '
                  f'ms, ratio {with_s / without_s:.3f}; the check alone '
                  f'{check_s * 1e3:.1f} ms = {check_s / without_s:.1%} of '
                  'the call')
    finally:
        if saved is None:
            os.environ.pop(CHECKS_ENV, None)
        else:
            os.environ[CHECKS_ENV] = saved


if __name__ == '__main__':
    main()
