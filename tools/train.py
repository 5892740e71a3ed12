# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Train a segmentor: MMSeg 1.2.2's ``tools/train.py`` plus mmseg_ext.

Same command line as MMSeg's. Additionally it imports ``mmseg_ext`` before
the config is parsed (so configs need no ``custom_imports``,
``_base_ = ['mmseg_ext::...']`` resolves and torch>=2.6 ``--resume``
works), runs multi-process on CPU with ``gloo`` when there is no CUDA
device, and stops early with a clear message when ``--amp`` is asked for
without CUDA. From an installed package: ``python -m mmseg_ext.tools.train
CONFIG ...``; multi-process: ``tools/dist_train.sh`` (torchrun) or
``tools/slurm_train.sh`` (``--launcher slurm``).
"""
import argparse
import os
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401  (registers modules, applies compat)
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    # Run from a checkout without `pip install -e .`.
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmengine.config import DictAction
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from mmseg_ext.engine.launch import (check_amp_config,
                                     enable_amp, setup_cpu_distributed,
                                     teardown_distributed)
from mmseg_ext.engine.tool_cli import add_debug_arg, load_config, tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (needs CUDA)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)

    return args


@tool_main('tools/train.py')
def main(argv=None):
    args = parse_args(argv)

    # load config (a bad path or an unparsable file: one line naming it)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        # update configs according to CLI args if args.work_dir is not None
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        # use config filename as default work_dir if cfg.work_dir is None
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    # enable automatic-mixed-precision training; fail here, not deep inside
    # the Runner, when there is no CUDA device
    # (AmpUnavailableError: one line through tool_main)
    if args.amp:
        enable_amp(cfg)
    check_amp_config(cfg)

    # resume training
    cfg.resume = args.resume

    # multi-process on a machine without CUDA: gloo, CPU DDP, no SyncBN
    setup_cpu_distributed(cfg, args.launcher)

    # build the runner from config
    if 'runner_type' not in cfg:
        # build the default runner
        runner = Runner.from_cfg(cfg)
    else:
        # build customized runner from the registry
        # if 'runner_type' is set in the cfg
        runner = RUNNERS.build(cfg)

    # start training
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
