# Copyright (c) mmseg_ext contributors. All rights reserved.
"""A run's config (model, backbone, crop, schedule, batch; flattened keys
and their differences) and MMSeg's model-zoo ``metafile.yaml`` entries.

Split from :mod:`mmseg_ext.apis.compare_runs` (which re-exports it).
"""
import difflib
import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence


from .model_cost import crop_of
from .run_logs import RunInputError, ZooLookupError

__all__ = ['config_summary', 'flatten_config', 'config_diff', 'zoo_lookup']


# ---------------------------------------------------------------- config
def _find_config(work_dir: str, run_dirs: Sequence[str]) -> Optional[str]:
    for run_dir in reversed(run_dirs):
        path = osp.join(run_dir, 'vis_data', 'config.py')
        if osp.isfile(path):
            return path
    found = glob.glob(osp.join(work_dir, '*.py'))
    return max(found, key=osp.getmtime) if found else None


def _load_config(path: str):
    from mmengine.config import Config
    try:
        return Config.fromfile(path, import_custom_modules=False)
    except Exception as err:  # noqa: B902 (any config error: name the file)
        first = str(err).splitlines()[0] if str(err) else ''
        raise RunInputError(
            path=path, reason='the config cannot be loaded '
            f'({type(err).__name__}: {first})') from err


def _describe_type(part) -> Optional[str]:
    if not isinstance(part, dict) or 'type' not in part:
        return None
    details = [f'{k}={part[k]}' for k in ('arch', 'depth', 'embed_dims')
               if k in part and not isinstance(part[k], dict)]
    text = str(part['type'])
    return f'{text}({", ".join(details)})' if details else text


def _head_type(head) -> Optional[str]:
    if isinstance(head, dict) and isinstance(head.get('head'), dict):
        return f'{head.get("type")}[{head["head"].get("type")}]'
    return head.get('type') if isinstance(head, dict) else None


def config_summary(cfg) -> dict:
    """What a README table says of a run's config.

    Returns:
        dict: ``segmentor``, ``model`` (decode head type), ``backbone``
        (type and ``arch`` / ``depth`` / ``embed_dims``), ``in_channels``,
        ``num_classes``, ``crop`` (``'HxW'``), ``schedule`` (``'6 iters'``
        / ``'12 epochs'``), ``batch`` (per GPU), ``optimizer``, ``lr``,
        ``dataset`` (missing parts None).
    """
    model = cfg.get('model', {}) or {}
    backbone = model.get('backbone') or {}
    head = model.get('decode_head') or {}
    inner = head.get('head') if isinstance(head.get('head'), dict) else head
    train_cfg = cfg.get('train_cfg') or {}
    schedule = None
    if 'max_iters' in train_cfg:
        schedule = f'{train_cfg["max_iters"]} iters'
    elif 'max_epochs' in train_cfg:
        schedule = f'{train_cfg["max_epochs"]} epochs'
    loader = cfg.get('train_dataloader') or {}
    optim = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
    crop = crop_of(cfg)
    return dict(
        segmentor=model.get('type'),
        model=_head_type(head),
        backbone=_describe_type(backbone),
        in_channels=backbone.get('in_channels', 3),
        num_classes=inner.get('num_classes') if isinstance(inner, dict)
        else None,
        crop=None if crop is None else f'{crop[0]}x{crop[1]}',
        schedule=schedule,
        batch=loader.get('batch_size'),
        optimizer=optim.get('type'),
        lr=optim.get('lr'),
        dataset=(loader.get('dataset') or {}).get('type'))


def flatten_config(cfg, prefix: str = '') -> Dict[str, object]:
    """``{'model.backbone.depth': 50, 'train_dataloader.dataset.pipeline.
    0.type': 'LoadImageFromFile', ...}``: dicts by key, lists by index."""
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    out = {}

    def walk(value, key):
        if isinstance(value, dict) and value:
            for k in value:
                walk(value[k], f'{key}.{k}' if key else str(k))
        elif isinstance(value, (list, tuple)) and value and any(
                isinstance(v, (dict, list, tuple)) for v in value):
            for i, v in enumerate(value):
                walk(v, f'{key}.{i}')
        else:
            out[key] = list(value) if isinstance(value, tuple) else value

    walk(data, prefix)
    return out


#: Keys that differ between any two runs and say nothing (paths of outputs).
DIFF_IGNORED = ('work_dir', 'filename', 'launcher')


def config_diff(flats: Sequence[Dict[str, object]],
                ignore: Sequence[str] = DIFF_IGNORED) -> List[dict]:
    """The flattened keys whose values differ between runs.

    Args:
        flats (Sequence[dict]): :func:`flatten_config` of each run.
        ignore (Sequence[str]): Top-level keys left out. Defaults to
            :data:`DIFF_IGNORED`.

    Returns:
        list[dict]: ``{'key': k, 'values': [value or None per run],
        'missing': [bool per run]}``, sorted by key.
    """
    keys = sorted(set().union(*[set(f) for f in flats])) if flats else []
    rows = []
    for key in keys:
        if key.split('.')[0] in ignore:
            continue
        missing = [key not in f for f in flats]
        values = [f.get(key) for f in flats]
        texts = {json.dumps(v, sort_keys=True, default=str) if not m else
                 '\0missing' for v, m in zip(values, missing)}
        if len(texts) > 1:
            rows.append(dict(key=key, values=values, missing=missing))
    return rows


# -------------------------------------------------------------------- zoo
def _metafiles() -> List[str]:
    import mmseg
    root = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')
    return sorted(glob.glob(osp.join(root, '*', 'metafile.yaml')))


def zoo_lookup(name: str) -> dict:
    """A model of the installed MMSeg's model zoo, from its
    ``metafile.yaml``.

    Args:
        name (str): The zoo name (the config name without ``.py``), e.g.
            ``'segformer_mit-b0_8xb2-160k_ade20k-512x512'``.

    Returns:
        dict: ``name``, ``dataset``, ``task``, ``metrics`` (``{key:
        value}`` as listed, percent), ``batch_size``, ``memory_gb``,
        ``hardware``, ``architecture``, ``weights``, ``training_log``,
        ``config``, ``metafile``.

    Raises:
        ZooLookupError: if no metafile lists ``name`` (with close names).
    """
    import yaml
    name = osp.splitext(osp.basename(str(name)))[0]
    files = _metafiles()
    names = []
    loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
    for path in files:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        if not re.search(rf'^- Name: {re.escape(name)}\s*$', text, re.M):
            # parse only the file that lists it (52 files: seconds in YAML)
            names += re.findall(r'^- Name: (\S+)', text, re.M)
            continue
        data = yaml.load(text, Loader=loader) or {}
        for model in data.get('Models') or []:
            names.append(model.get('Name'))
            if model.get('Name') != name:
                continue
            results = model.get('Results') or {}
            if isinstance(results, list):
                results = results[0] if results else {}
            meta = model.get('Metadata') or {}
            return dict(
                name=name,
                dataset=results.get('Dataset'),
                task=results.get('Task'),
                metrics=dict(results.get('Metrics') or {}),
                batch_size=meta.get('Batch Size'),
                memory_gb=meta.get('Memory (GB)'),
                hardware=meta.get('Training Resources'),
                architecture=meta.get('Architecture'),
                weights=model.get('Weights'),
                training_log=model.get('Training log'),
                config=model.get('Config'),
                metafile=path)
    close = difflib.get_close_matches(name, [n for n in names if n], n=3)
    raise ZooLookupError(
        reason=f'no installed MMSeg metafile.yaml ({len(files)} files) '
        'lists the model', value=name,
        expected='a zoo config name such as '
        f'{close or ["segformer_mit-b0_8xb2-160k_ade20k-512x512"]}')
