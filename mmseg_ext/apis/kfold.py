# Copyright (c) mmseg_ext contributors. All rights reserved.
"""K-fold cross-validation: per-fold configs, training, out-of-fold scores.

Layout under ``{work_root}/{name}`` (``name``: the config's file name without
``.py``)::

    fold{k}/config.py              # the config with fold k set
    fold{k}/oof_per_class.json     # written by the metric during validation
    fold{k}/kfold_done.json        # written after fold k trained (--resume)
    oof_scores.csv / .json / .png  # folds x classes table and heatmap
    members.txt                    # "CONFIG CHECKPOINT" per fold

The fold is set on every dataset dict of ``train_dataloader``,
``val_dataloader`` and ``test_dataloader`` whose type belongs to a task
adapter (:mod:`mmseg_ext.tasks`; :data:`FOLD_DATASETS` lists them;
wrappers with ``dataset``/``datasets`` are followed); the task says which
fold arguments it takes (``fold_keys``: ``BuildingRLEDataset`` also gets
``num_folds``). ``HandBoneDataset``'s folds come from the converter's split
files, so the dataset must have been converted with ``--num-folds`` at
least ``K``.
"""
import copy
import glob
import os
import os.path as osp
import re
import site
import subprocess
import sys
import warnings
from collections.abc import Mapping
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.runner.checkpoint import find_latest_checkpoint

from mmseg_ext.utils.io import atomic_path, dump_json_atomic

__all__ = [
    'FOLD_DATASETS', 'PER_CLASS_JSON_METRICS', 'OOF_JSON', 'DONE_JSON',
    'set_fold', 'make_fold_config', 'write_kfold_configs', 'fold_dirs',
    'find_checkpoint', 'train_folds', 'collect_kfold', 'ensemble_command'
]


class _FoldDatasets(Mapping):
    """``{dataset type: takes num_folds}`` of the registered task adapters,
    read when asked (a task registered later is included)."""

    def _table(self) -> Dict[str, bool]:
        from mmseg_ext.tasks import task_classes
        return {
            ds_type: 'num_folds' in cls.fold_keys
            for cls in task_classes().values()
            for ds_type in cls.dataset_types if 'fold' in cls.fold_keys
        }

    def __getitem__(self, key):
        return self._table()[key]

    def __iter__(self):
        return iter(self._table())

    def __len__(self):
        return len(self._table())


#: Dataset types with a ``fold`` argument, and whether they take
#: ``num_folds`` too (from the task adapters' ``fold_keys``).
FOLD_DATASETS = _FoldDatasets()
#: Metrics with a ``per_class_json`` argument.
PER_CLASS_JSON_METRICS = ('MultiLabelDiceMetric', 'PerClassIoUMetric')
OOF_JSON = 'oof_per_class.json'
DONE_JSON = 'kfold_done.json'
_FOLD_RE = re.compile(r'^fold(\d+)$')
#: The folder the running ``mmseg_ext`` is imported from (site-packages, a
#: ``pip install --target`` folder, a checkout): fold processes import the
#: same package (see :func:`_fold_env`).
_PACKAGE_PARENT = osp.dirname(
    osp.dirname(osp.dirname(osp.abspath(__file__))))
#: How a fold is trained: ``tools/train.py`` of the installed package.
TRAIN_MODULE = 'mmseg_ext.tools.train'


def _check_folds(fold: int, num_folds: int) -> None:
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or \
            num_folds < 2:
        raise ValueError('`num_folds` should be an int >= 2, but got '
                         f'{num_folds!r}')
    if isinstance(fold, bool) or not isinstance(fold, int) or \
            not 0 <= fold < num_folds:
        raise ValueError(f'`fold` should be an int in [0, {num_folds}), but '
                         f'got {fold!r}')


def set_fold(dataset_cfg: dict, fold: int, num_folds: int) -> int:
    """Set ``fold`` (and ``num_folds`` where taken) on a dataset config.

    Follows dataset wrappers (``dataset`` / ``datasets`` keys) in place.

    Args:
        dataset_cfg (dict): A dataset config (changed in place).
        fold (int): Fold index, ``0 <= fold < num_folds``.
        num_folds (int): ``K >= 2``.

    Returns:
        int: How many dataset configs got the fold (0 if none has one).
    """
    from mmseg_ext.tasks import task_classes
    _check_folds(fold, num_folds)
    if not isinstance(dataset_cfg, dict):
        return 0
    count = 0
    ds_type = dataset_cfg.get('type')
    for cls in task_classes().values():
        if ds_type in cls.dataset_types and cls.fold_keys:
            cls().set_fold(dataset_cfg, fold, num_folds)
            count += 1
            break
    if isinstance(dataset_cfg.get('dataset'), dict):
        count += set_fold(dataset_cfg['dataset'], fold, num_folds)
    for sub in dataset_cfg.get('datasets', None) or []:
        count += set_fold(sub, fold, num_folds)
    return count


def _evaluators(evaluator) -> list:
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    if isinstance(evaluator, dict):
        return [evaluator]
    return list(evaluator or [])


def make_fold_config(cfg: Config, fold: int, num_folds: int,
                     work_dir: str) -> Config:
    """A copy of ``cfg`` that trains on fold ``fold`` and validates on it.

    Sets the fold on the train, val and test datasets (see
    :func:`set_fold`), ``work_dir``, and every ``val_evaluator`` metric
    with a ``per_class_json`` argument (:data:`PER_CLASS_JSON_METRICS`) to
    ``{work_dir}/oof_per_class.json``; other metrics are kept and warned
    about (their fold gets no out-of-fold scores).

    Args:
        cfg (Config): The base config (not changed).
        fold (int): Fold index.
        num_folds (int): ``K``.
        work_dir (str): The fold's work dir.

    Returns:
        Config: The fold's config.

    Raises:
        ValueError: if the train or val dataset has no ``fold`` argument,
            or the config has no ``val_dataloader``/``val_evaluator``.
    """
    _check_folds(fold, num_folds)
    cfg = copy.deepcopy(cfg)  # Config.copy() is shallow
    for key in ('train_dataloader', 'val_dataloader'):
        loader = cfg.get(key, None)
        if not loader or not loader.get('dataset'):
            raise ValueError(
                f'`{key}` should be set for K-fold training, but the config '
                f'has {key}={loader!r}')
        if set_fold(loader['dataset'], fold, num_folds) == 0:
            raise ValueError(
                f'`{key}.dataset` should be one of {sorted(FOLD_DATASETS)} '
                'with a `fold` argument (or a wrapper of one), but got '
                f"type={loader['dataset'].get('type')!r}; split the data "
                'into folds in the dataset first')
    if cfg.get('test_dataloader', None) and \
            cfg.test_dataloader.get('dataset'):
        set_fold(cfg.test_dataloader.dataset, fold, num_folds)
    if not cfg.get('val_evaluator', None):
        raise ValueError('`val_evaluator` should be set for K-fold training '
                         '(its per-class JSON is the out-of-fold score), but '
                         'the config has none')
    cfg.work_dir = work_dir
    found = False
    for metric in _evaluators(cfg.val_evaluator):
        if metric.get('type') in PER_CLASS_JSON_METRICS:
            metric['per_class_json'] = osp.join(work_dir, OOF_JSON)
            found = True
        else:
            warnings.warn(
                f"val_evaluator {metric.get('type')!r} writes no per-class "
                f'JSON (only {PER_CLASS_JSON_METRICS} do): fold {fold} gets '
                'no out-of-fold scores')
    if not found:
        warnings.warn('no val_evaluator metric writes a per-class JSON; '
                      '`collect_kfold` will find no out-of-fold scores')
    return cfg


def write_kfold_configs(config: str,
                        num_folds: int,
                        out_dir: str,
                        cfg_options: Optional[dict] = None) -> List[str]:
    """Write ``{out_dir}/fold{k}/config.py`` for ``k < num_folds``.

    Args:
        config (str): The config file.
        num_folds (int): ``K >= 2``.
        out_dir (str): Root of the fold dirs (``work_dirs/kfold/{name}``).
        cfg_options (dict, optional): Merged into the config first (as
            ``--cfg-options``). Defaults to None.

    Returns:
        list[str]: The written config paths, by fold.
    """
    _check_folds(0, num_folds)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    paths = []
    for k in range(num_folds):
        work_dir = osp.abspath(osp.join(out_dir, f'fold{k}'))
        fold_cfg = make_fold_config(cfg, k, num_folds, work_dir)
        path = osp.join(work_dir, 'config.py')
        with atomic_path(path) as tmp:
            fold_cfg.dump(tmp)
        paths.append(path)
    return paths


def fold_dirs(out_dir: str) -> List[Tuple[int, str]]:
    """``(k, path)`` of the ``fold{k}`` dirs under ``out_dir``, by ``k``."""
    found = []
    for path in glob.glob(osp.join(out_dir, 'fold*')):
        match = _FOLD_RE.match(osp.basename(path))
        if match and osp.isdir(path):
            found.append((int(match[1]), path))
    return sorted(found)


def find_checkpoint(work_dir: str, which: str = 'best') -> Optional[str]:
    """The fold's checkpoint: the newest ``best_*.pth`` or the last one.

    Args:
        work_dir (str): A training work dir.
        which (str): ``'best'`` (``best_*.pth`` of ``CheckpointHook``'s
            ``save_best``; the last checkpoint if there is none) or
            ``'last'`` (mmengine's ``find_latest_checkpoint``, the record
            ``--resume`` reads; else the highest ``iter_*``/``epoch_*``).
            Defaults to ``'best'``.

    Returns:
        str or None: The checkpoint path, None if there is none.
    """
    if which not in ('best', 'last'):
        raise ValueError("`which` should be 'best' or 'last', but got "
                         f'{which!r}')
    if which == 'best':
        best = glob.glob(osp.join(work_dir, 'best_*.pth'))
        if best:
            return max(best, key=osp.getmtime)
    # mmengine logs "Did not find last_checkpoint to be resumed." when the
    # record is missing: only ask when there is one.
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        path = find_latest_checkpoint(work_dir)
        if path and not osp.isabs(path):
            path = osp.join(work_dir, path)
        if path and osp.isfile(path):
            return path
    # No record, or one naming a deleted file: the highest number.

    def number(p):
        m = re.search(r'(\d+)\.pth$', p)
        return int(m[1]) if m else -1

    ckpts = glob.glob(osp.join(work_dir, 'iter_*.pth')) + \
        glob.glob(osp.join(work_dir, 'epoch_*.pth'))
    return max(ckpts, key=number) if ckpts else None


def _fold_env() -> Dict[str, str]:
    """The environment of a fold process: this one's, and ``mmseg_ext``
    importable from where this process imports it.

    ``_PACKAGE_PARENT`` is appended to ``PYTHONPATH`` (after the user's
    entries, so nothing they put first is shadowed) unless it is a
    site-packages folder, which every child has anyway: a package imported
    from a ``--target`` folder or an uninstalled checkout stays importable.
    """
    env = dict(os.environ)
    entries = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    site_dirs = set(site.getsitepackages() + [site.getusersitepackages()])
    if _PACKAGE_PARENT not in entries and _PACKAGE_PARENT not in site_dirs:
        env['PYTHONPATH'] = os.pathsep.join(entries + [_PACKAGE_PARENT])
    return env


def train_folds(out_dir: str,
                resume: bool = False,
                train_args: Sequence[str] = (),
                train_script: Optional[str] = None,
                folds: Optional[Sequence[int]] = None) -> List[int]:
    """Train the folds of ``out_dir`` in turn, one subprocess each.

    Each fold runs ``python -m mmseg_ext.tools.train fold{k}/config.py
    --work-dir fold{k}`` (the package's ``tools/train.py``, also from a
    non-editable install) in a fresh child process (no state leaks between
    folds), with the interpreter and the ``mmseg_ext`` of this process; a
    fold that exits with status 0 gets ``fold{k}/kfold_done.json``. With
    ``resume``, finished folds are skipped and an unfinished fold with a
    checkpoint continues with ``--resume``.

    Args:
        out_dir (str): Root written by :func:`write_kfold_configs`.
        resume (bool): Skip finished folds, resume started ones.
            Defaults to False.
        train_args (Sequence[str]): Extra ``tools/train.py`` arguments
            (e.g. ``['--amp']``). Defaults to ().
        train_script (str, optional): A training script to run instead
            (``python SCRIPT CONFIG --work-dir DIR ...``). Defaults to None
            (``python -m mmseg_ext.tools.train``).
        folds (Sequence[int], optional): Only these folds. Defaults to all.

    Returns:
        list[int]: The folds trained by this call.

    Raises:
        FileNotFoundError: if there is no fold config.
        RuntimeError: if a fold's training fails (the later folds are not
            started; rerun with ``resume``).
    """
    train = [train_script] if train_script else ['-m', TRAIN_MODULE]
    dirs = fold_dirs(out_dir)
    if folds is not None:
        dirs = [(k, d) for k, d in dirs if k in set(folds)]
    dirs = [(k, d) for k, d in dirs if osp.isfile(osp.join(d, 'config.py'))]
    if not dirs:
        raise FileNotFoundError(f'no fold*/config.py under {out_dir}; write '
                                'the fold configs first')
    env = _fold_env()
    trained = []
    for k, work_dir in dirs:
        done = osp.join(work_dir, DONE_JSON)
        if resume and osp.isfile(done):
            print(f'fold {k}: finished ({done}), skipped', flush=True)
            continue
        if osp.isfile(done):
            os.remove(done)
        cmd = [sys.executable, *train, osp.join(work_dir, 'config.py'),
               '--work-dir', work_dir] + list(train_args)
        if resume and find_checkpoint(work_dir, 'last') is not None:
            cmd.append('--resume')
        print(f'fold {k}: ' + ' '.join(cmd), flush=True)
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            raise RuntimeError(
                f'fold {k} training failed (exit code {proc.returncode}); '
                f'see the log under {work_dir}; rerun with --resume to skip '
                'the finished folds')
        dump_json_atomic(
            dict(fold=k, checkpoint=find_checkpoint(work_dir, 'last'),
                 best=find_checkpoint(work_dir, 'best')), done)
        trained.append(k)
    return trained


# The report half (out-of-fold tables, members, ensemble command).
from .kfold_report import (  # noqa: E402,F401
    _test_split_options, collect_kfold, ensemble_command)
