# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Task adapters: one registered object per task (``TASK_UTILS``).

Generic code finds the task of a config from its dataset
(:func:`task_from_dataset`) or by a short name (:func:`build_task`) and asks
it for everything task-specific (classes, ground truth, submission CSV,
pseudo-label layout, fold arguments; see :class:`BaseSegTask`).
"""
from typing import Dict, List, Optional, Type, Union

from mmseg.registry import TASK_UTILS

from .base import BaseSegTask
from .brats import BraTSTask
from .building import BuildingTask
from .hand_bone import HandBoneTask

__all__ = [
    'BaseSegTask', 'HandBoneTask', 'BuildingTask', 'build_task',
    'task_from_dataset', 'task_names', 'task_classes', 'BraTSTask'
]


def task_classes() -> Dict[str, Type[BaseSegTask]]:
    """``{registered type name: class}`` of every task adapter in
    ``TASK_UTILS`` (including ones registered after import, e.g. in a
    test)."""
    return {
        key: cls
        for key, cls in TASK_UTILS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, BaseSegTask)
    }


def task_names() -> List[str]:
    """The short names of the registered tasks, sorted (CLI choices)."""
    return sorted(cls.name for cls in task_classes().values() if cls.name)


def build_task(spec: Union[str, dict, BaseSegTask]) -> BaseSegTask:
    """A task adapter from a short name, a type name, a config or itself.

    Args:
        spec (str | dict | BaseSegTask): ``'hand_bone'`` (a task's
            :attr:`~BaseSegTask.name`), ``'HandBoneTask'`` (its registered
            type), ``dict(type='HandBoneTask', ...)`` or an instance.

    Returns:
        BaseSegTask: The adapter.

    Raises:
        ValueError: for an unknown name or a type that is no task adapter.

    Examples:
        >>> build_task('building').dataset_types
        ('BuildingRLEDataset',)
    """
    if isinstance(spec, BaseSegTask):
        return spec
    tasks = task_classes()
    if isinstance(spec, str):
        for cls in tasks.values():
            if cls.name == spec:
                return cls()
        if spec in tasks:
            return tasks[spec]()
    elif isinstance(spec, dict) and spec.get('type') is not None:
        cfg = dict(spec)
        by_name = {cls.name: key for key, cls in tasks.items() if cls.name}
        cfg['type'] = by_name.get(cfg['type'], cfg['type'])
        if cfg['type'] in tasks:
            return TASK_UTILS.build(cfg)
    raise ValueError(f'the task should be one of {task_names()} (or a '
                     'registered BaseSegTask type in TASK_UTILS: '
                     f'{sorted(tasks)}), but got {spec!r}; register a '
                     'BaseSegTask subclass for a new task')


def task_from_dataset(dataset_cfg, default=None) -> Optional[BaseSegTask]:
    """The task whose ``dataset_types`` include a dataset config's type.

    Follows dataset wrappers (``dataset`` / ``datasets`` keys, first match
    wins).

    Args:
        dataset_cfg (dict | BaseDataset): A dataset config (or a built
            dataset: its class name is the type).
        default: Returned when no task claims the type. Defaults to None.

    Returns:
        BaseSegTask | None: The adapter, or ``default``.

    Examples:
        >>> task_from_dataset(dict(type='ConcatDataset', datasets=[
        ...     dict(type='HandBoneDataset', data_root='x')]))
        HandBoneTask(name='hand_bone')
    """
    if not isinstance(dataset_cfg, dict):
        ds_type = type(dataset_cfg).__name__
        for cls in task_classes().values():
            if ds_type in cls.dataset_types:
                return cls()
        return default
    ds_type = dataset_cfg.get('type')
    for cls in task_classes().values():
        if ds_type in cls.dataset_types:
            return cls()
    subs = []
    if isinstance(dataset_cfg.get('dataset'), dict):
        subs.append(dataset_cfg['dataset'])
    subs += [d for d in dataset_cfg.get('datasets', None) or []]
    for sub in subs:
        task = task_from_dataset(sub)
        if task is not None:
            return task
    return default
