# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The shipped tools, runnable from an installed package.

This package has no modules of its own: its search path is the package's
``.mim/tools`` folder (a link to the repository's ``tools/`` in a checkout,
a copy in a wheel), so every tool runs as a module::

    python -m mmseg_ext.tools.train CONFIG [--work-dir DIR] ...
    python -m mmseg_ext.tools.test CONFIG CHECKPOINT ...
    python -m mmseg_ext.tools.kfold CONFIG --num-folds 5 --train
    python -m mmseg_ext.tools.dataset_converters.hand_bone data/hand_bone

Sub-folders (``analysis_tools``, ``dataset_converters``, ``misc``) are
namespace packages below it. The ``.sh`` launchers are in the same folder:
``python -c "import mmseg_ext.tools as t; print(t.__path__[0])"``.
"""
import os.path as osp

__path__ = [osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim',
                     'tools')]
