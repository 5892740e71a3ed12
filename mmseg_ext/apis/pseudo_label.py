# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Pseudo-labels: confident ensemble predictions as a dataset of the task.

Inputs are the saved probabilities of ``E`` ensemble members on unlabelled
images (``tools/ensemble.py --save-probs``, or any folder of
``{image_stem}.npy`` uint8 ``(C, H, W)`` maps, ``round(255 p)``, see
:func:`mmseg_ext.apis.ensemble.save_probs`). Per image the members are
merged by :func:`mmseg_ext.utils.ensemble.soft_vote` (optionally weighted)
into ``p`` of shape ``(C, H, W)``, and every class-pixel is

- positive if ``p >= pos``,
- negative if ``p <= neg``,
- unsure otherwise.

An image whose *unsure fraction* exceeds ``max_unsure`` is skipped (logged
and listed in the manifest). The unsure fraction is the fraction of pixels
that are unsure for at least one of the classes the task keeps.

What is written is the task adapter's (:mod:`mmseg_ext.tasks`:
``list_unlabelled_images``, ``pseudo_label_probs``, ``pseudo_label_outputs``,
``write_pseudo_label``, ``write_pseudo_index``, ``pseudo_label_dataset``);
``task`` is a registered task's name or the adapter.

The layouts of the shipped tasks are documented on their adapters
(:class:`~mmseg_ext.tasks.HandBoneTask`,
:class:`~mmseg_ext.tasks.BuildingTask`).

``manifest.json`` holds the settings, the kept images (with their unsure
and positive fractions), the skipped ones (with the reason) and totals.

Outputs are written atomically file by file (:mod:`mmseg_ext.utils.io`,
:func:`~mmseg_ext.utils.multilabel.write_packed_label`); the split files or
the CSV and the manifest are written last, so an interrupted run leaves no
list naming a missing label. Every probability map is looked up before
anything is written. An output folder must be new, empty, or an earlier
output of this tool (its ``manifest.json`` says so); files of images no
longer kept are then removed. It is never a labelled dataset root.

Multi-process (``tools/dist_pseudo_label.sh N ...``, ``--launcher``): the
images are sharded by rank; each rank writes the images and labels of its
shard, and the kept/skipped entries and CSV rows are streamed to rank 0,
which writes the ONE ``train.csv`` / split list and ``manifest.json`` in the
same order as a single process (:mod:`mmseg_ext.utils.dist`).
"""
import contextlib
import logging
import os
import os.path as osp
import shutil
import sys
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.logging import print_log

from mmseg_ext.utils.dist import (advance_progress, dist_info, gather_chunks,
                                  run_on_main, shard, sync_errors)
from mmseg_ext.utils.ensemble import soft_vote
from mmseg_ext.utils.io import atomic_path, dump_json_atomic
from .ensemble import PROB_SUFFIX, check_member_weights, load_probs

__all__ = [  # noqa: F822 (TASKS: the module's __getattr__)
    'TASKS', 'MANIFEST_NAME', 'threshold_probs', 'list_unlabelled_images',
    'make_pseudo_labels'
]

MANIFEST_NAME = 'manifest.json'
TOOL_TAG = 'mmseg_ext.pseudo_label'


def __getattr__(name):
    # ``TASKS``: the registered task names, read when asked (a task
    # registered later, e.g. in a test, is included).
    if name == 'TASKS':
        from mmseg_ext.tasks import task_names
        return tuple(task_names())
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _task(task):
    from mmseg_ext.tasks import build_task
    return build_task(task)


def threshold_probs(probs: np.ndarray, pos: float = 0.9,
                    neg: float = 0.1) -> tuple:
    """Split ``(C, H, W)`` probabilities into positive and unsure pixels.

    Args:
        probs (np.ndarray): ``(C, H, W)`` float probabilities in ``[0, 1]``.
        pos (float): Positive if ``p >= pos``. Defaults to 0.9.
        neg (float): Negative if ``p <= neg``. Defaults to 0.1.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(positive, unsure)``, two
        ``(C, H, W)`` bool arrays (negative is neither).

    Raises:
        ValueError: if not ``0 <= neg < pos <= 1``.

    Examples:
        >>> p = np.array([[[0.95, 0.5, 0.05]]], np.float32)
        >>> positive, unsure = threshold_probs(p, 0.9, 0.1)
        >>> positive.tolist(), unsure.tolist()
        ([[[True, False, False]]], [[[False, True, False]]])
    """
    _check_thresholds(pos, neg)
    probs = np.asarray(probs)
    positive = probs >= pos
    unsure = ~positive & (probs > neg)
    return positive, unsure


def _check_thresholds(pos: float, neg: float) -> None:
    for name, value in (('pos', pos), ('neg', neg)):
        if isinstance(value, bool) or not isinstance(
                value, (int, float, np.floating)) or not 0 <= value <= 1:
            raise ValueError(f'`{name}` should be a number in [0, 1], but '
                             f'got {value!r}')
    if not neg < pos:
        raise ValueError(f'`neg` should be below `pos`, but got neg={neg} '
                         f'and pos={pos}')


def list_unlabelled_images(task, images: str) -> List[dict]:
    """The unlabelled images of a task, sorted.

    Args:
        task (str | BaseSegTask): The task (its name or adapter), whose
            :meth:`~mmseg_ext.tasks.BaseSegTask.list_unlabelled_images`
            reads ``images``. Hand bones: a folder of ``{ID}/{name}.png``
            (e.g. ``data/hand_bone/test/DCM``). Buildings: a CSV with
            ``img_id`` and ``img_path`` columns (e.g. ``test.csv``; paths
            relative to its folder), or a folder of images (``img_id`` =
            file stem).
        images (str): The images (a folder or a file).

    Returns:
        list[dict]: ``img_path`` (absolute), ``stem`` (the key of the
        probability files), ``rel`` (hand bones: ``'{ID}/{name}.png'``;
        buildings: the output file name) and ``img_id`` (buildings).

    Raises:
        FileNotFoundError: if ``images`` does not exist or lists no image.
        ValueError: for an unknown task, or if two images share a stem (the
            probability files could not tell them apart).
    """
    task = _task(task)
    if not osp.exists(images):
        raise FileNotFoundError(f'unlabelled images {images!r} do not exist')
    items = task.list_unlabelled_images(images)
    if not items:
        raise FileNotFoundError(f'no image found in {images!r}')
    seen = {}
    for item in items:
        if item['stem'] in seen:
            raise ValueError(
                f'images {seen[item["stem"]]!r} and {item["img_path"]!r} '
                f'share the stem {item["stem"]!r}; probability files '
                f'({item["stem"]}{PROB_SUFFIX}) cannot tell them apart')
        seen[item['stem']] = item['img_path']
    return items


def _image_size(path: str) -> tuple:
    """``(H, W)`` from the image header."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, ValueError) as err:
        raise ValueError(f'image {path!r} cannot be read: {err}') from err
    return h, w


def _prepare_out_dir(out_dir: str) -> dict:
    """Check ``out_dir`` may be written; return the earlier manifest."""
    if not osp.exists(out_dir):
        return {}
    if not osp.isdir(out_dir):
        raise FileExistsError(f'output {out_dir!r} exists and is not a '
                              'folder')
    manifest_path = osp.join(out_dir, MANIFEST_NAME)
    if not os.listdir(out_dir):
        return {}
    previous = None
    if osp.isfile(manifest_path):
        import json
        try:
            with open(manifest_path, encoding='utf-8') as f:
                previous = json.load(f)
        except (OSError, ValueError):
            previous = None
    if not isinstance(previous, dict) or previous.get('tool') != TOOL_TAG:
        raise FileExistsError(
            f'output folder {out_dir!r} is not empty and is not an earlier '
            f'output of tools/pseudo_label.py (no {MANIFEST_NAME} of it); '
            'give a new folder (pseudo-labels never go into a labelled '
            'dataset root)')
    return previous


def _place_image(src: str, dst: str, copy: bool) -> None:
    """Link (absolute symlink) or copy ``src`` to ``dst``, atomically."""
    src = osp.realpath(src)
    if osp.exists(dst) and osp.realpath(dst) == src and \
            osp.islink(dst) != copy:
        return
    if copy:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        return
    folder = osp.dirname(osp.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(dst)}.{os.getpid()}.link')
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)
    os.symlink(src, tmp)
    try:
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _load_members(folders: Sequence[str], item: dict) -> List[np.ndarray]:
    """The ``E`` probability maps of one image, checked against it."""
    probs, first = [], None
    for folder in folders:
        path = osp.join(folder, item['stem'] + PROB_SUFFIX)
        p = load_probs(path)
        if first is None:
            first = (path, p.shape)
        elif p.shape != first[1]:
            raise ValueError(
                f'{path}: probabilities of shape (C, H, W) = {p.shape} '
                f'differ from {first[0]} of shape {first[1]} (image '
                f'{item["img_path"]})')
        probs.append(p)
    return probs


def make_pseudo_labels(task,
                       prob_dirs: Union[str, Sequence[str]],
                       images: str,
                       out_dir: str,
                       pos: float = 0.9,
                       neg: float = 0.1,
                       max_unsure: float = 1.0,
                       weights: Optional[np.ndarray] = None,
                       class_index: Optional[int] = None,
                       copy_images: bool = False,
                       num_folds: int = 5,
                       show_progress: bool = True) -> dict:
    """Write a pseudo-labelled dataset of ``task`` (see the module doc).

    Args:
        task (str | BaseSegTask): A registered task's name
            (:func:`mmseg_ext.tasks.task_names`) or the adapter.
        prob_dirs (str | Sequence[str]): ``E >= 1`` folders of
            ``{image_stem}.npy`` uint8 ``(C, H, W)`` probabilities, one per
            ensemble member.
        images (str): The unlabelled images (see
            :func:`list_unlabelled_images`).
        out_dir (str): The new dataset root (new, empty, or an earlier
            output of this function).
        pos (float): Positive threshold, ``p >= pos``. Defaults to 0.9.
        neg (float): Negative threshold, ``p <= neg``. Defaults to 0.1.
        max_unsure (float): Skip an image whose unsure fraction exceeds
            this, in ``[0, 1]``. Defaults to 1.0 (keep every image).
        weights (np.ndarray, optional): ``(E,)`` or ``(E, C)`` soft-vote
            weights. Defaults to None (equal).
        class_index (int, optional): Buildings: the building channel
            (default 0 for ``C = 1``, 1 for ``C = 2`` softmax members).
        copy_images (bool): Copy the images instead of symlinking them.
            Defaults to False.
        num_folds (int): Hand bones: ``fold{k}_train.txt`` files written,
            ``k < num_folds``. Defaults to 5.
        show_progress (bool): Show a progress bar. Defaults to True.

    With a process group every rank must call it with the same arguments
    (see the module doc); each returns the manifest.

    Returns:
        dict: The manifest (also written to ``{out_dir}/manifest.json``):
        ``num_images``, ``num_kept``, ``num_skipped``, ``kept``,
        ``skipped``, ``mean_unsure_fraction`` and the settings.

    Raises:
        FileNotFoundError: naming the image and the file when a probability
            map is missing (checked before anything is written).
        ValueError: for bad thresholds or options, probability maps whose
            shape does not fit the image or the task (naming both files),
            or when no image is kept (the manifest is written first).
        FileExistsError: if ``out_dir`` is another non-empty folder.

    Examples:
        >>> manifest = make_pseudo_labels(
        ...     HandBoneTask(), ['work_dirs/ens/test_probs/0_a'],
        ...     'data/hand_bone/test/DCM', 'data/hand_bone_pseudo',
        ...     pos=0.9, neg=0.1, max_unsure=0.05)
        >>> manifest['num_kept']
    """
    task = _task(task)
    _check_thresholds(pos, neg)
    if isinstance(max_unsure, bool) or not isinstance(
            max_unsure, (int, float, np.floating)) or \
            not 0 <= max_unsure <= 1:
        raise ValueError('`max_unsure` should be a fraction in [0, 1], but '
                         f'got {max_unsure!r}')
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or \
            num_folds < 0:
        raise ValueError('`num_folds` should be an int >= 0, but got '
                         f'{num_folds!r}')
    if class_index is not None and not task.takes_class_index:
        raise ValueError('`class_index` applies to tasks with one channel '
                         f'to pick (building), but the task is '
                         f'{task.name!r}')
    folders = [prob_dirs] if isinstance(prob_dirs, str) else list(prob_dirs)
    if not folders:
        raise ValueError('`prob_dirs` should name at least one folder of '
                         'probability maps, but got none')
    for folder in folders:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'probability folder {folder!r} does not '
                                    'exist')
    if weights is not None:
        weights = check_member_weights(weights, len(folders))
    items = list_unlabelled_images(task, images)
    missing = [(folder, item) for item in items for folder in folders
               if not osp.isfile(osp.join(folder, item['stem'] + PROB_SUFFIX))]
    if missing:
        folder, item = missing[0]
        raise FileNotFoundError(
            f'probability map {osp.join(folder, item["stem"] + PROB_SUFFIX)} '
            f'of image {item["img_path"]} does not exist ({len(missing)} '
            'missing in all); every member needs every image: save the '
            'probabilities of all of them (tools/ensemble.py --save-probs)')
    previous = run_on_main(lambda: _prepare_out_dir(out_dir))
    if previous and previous.get('task') != task.name:
        raise FileExistsError(
            f'output folder {out_dir!r} holds {previous.get("task")!r} '
            f'pseudo-labels, but the task is {task.name!r}; give a new '
            'folder')

    rank, world_size = dist_info()
    bar = None
    if show_progress and rank == 0:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(items), file=sys.stdout)
    # (position, entry, CSV row or None, written paths) of this rank's
    # images; an entry without paths was skipped.
    results, error = [], None
    try:
        for position in shard(len(items)):
            entry, row, outputs = _pseudo_label_image(task, folders,
                                                      items[position], out_dir,
                                                      pos, neg, max_unsure,
                                                      weights, class_index,
                                                      copy_images)
            results.append((position, entry, row, outputs))
            advance_progress(bar, position, len(items))
    except Exception as err:  # noqa: B902 (raised on every rank)
        error = err
    if bar is not None:
        sys.stdout.write('\n')
    sync_errors(error)
    gathered = []
    step = 256  # images per chunk sent to rank 0
    gather_chunks((len(results) + step - 1) // step,
                  lambda i: results[i * step:(i + 1) * step],
                  lambda src, chunk: gathered.extend(chunk))
    results.clear()
    settings = dict(
        pos=pos,
        neg=neg,
        max_unsure=max_unsure,
        weights=None if weights is None else weights.tolist(),
        class_index=class_index,
        copy_images=copy_images)
    return run_on_main(
        lambda: _finish(task, out_dir, folders, images, len(items), gathered,
                        previous, settings, num_folds))


def _pseudo_label_image(task, folders, item, out_dir, pos, neg, max_unsure,
                        weights, class_index, copy_images):
    """One image: ``(entry, CSV row or None, written paths)``; the paths
    are empty if the image is skipped."""
    probs = _load_members(folders, item)
    c, h, w = probs[0].shape
    prob_file = osp.join(folders[0], item['stem'] + PROB_SUFFIX)
    size = _image_size(item['img_path'])
    if size != (h, w):
        raise ValueError(
            f'{prob_file}: probabilities (C, H, W) = {(c, h, w)} do not '
            f'fit image {item["img_path"]} of (H, W) = {size}; were they '
            'saved for another image or size?')
    probs, weights = task.pseudo_label_probs(probs, weights, class_index,
                                             prob_file)
    merged = soft_vote(probs, weights)
    positive, unsure = threshold_probs(merged, pos, neg)
    del merged, probs
    ignore = unsure.any(0)
    unsure_fraction = float(ignore.mean())
    entry = dict(
        image=item['img_path'],
        stem=item['stem'],
        unsure_fraction=round(unsure_fraction, 6))
    if unsure_fraction > max_unsure:
        entry['reason'] = (f'unsure fraction {unsure_fraction:.4f} > '
                           f'max_unsure {max_unsure}')
        print_log(
            f'pseudo_label: skipped {item["img_path"]}: {entry["reason"]}',
            logger='current',
            level=logging.WARNING)
        return entry, None, []
    outputs = task.pseudo_label_outputs(out_dir, item)
    fields, row = task.write_pseudo_label(outputs, item, positive, ignore)
    entry.update(fields)
    _place_image(item['img_path'], outputs['image'], copy_images)
    return entry, row, list(outputs.values())


def _finish(task, out_dir, folders, images, num_images, results, previous,
            settings, num_folds) -> dict:
    """Rank 0: remove stale files, write the index and the manifest."""
    results = sorted(results, key=lambda r: r[0])
    kept = [entry for _, entry, _, paths in results if paths]
    skipped = [entry for _, entry, _, paths in results if not paths]
    rows = [row for _, _, row, paths in results if paths and row]
    written = {path for *_, paths in results for path in paths}

    # Files of images kept by an earlier run but not by this one.
    for entry in previous.get('kept', []):
        item = task.pseudo_label_item(entry)
        for path in task.pseudo_label_outputs(out_dir, item).values():
            if path not in written:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
    task.write_pseudo_index(out_dir, kept, rows, num_folds)

    fractions = [e['unsure_fraction'] for e in kept + skipped]
    manifest = dict(
        tool=TOOL_TAG,
        task=task.name,
        prob_dirs=[osp.abspath(f) for f in folders],
        images=osp.abspath(images),
        **settings,
        unsure_policy=task.unsure_policy,
        dataset=task.pseudo_label_dataset(out_dir, kept),
        num_images=num_images,
        num_kept=len(kept),
        num_skipped=len(skipped),
        mean_unsure_fraction=float(np.mean(fractions)) if fractions else 0.,
        kept=kept,
        skipped=skipped)
    dump_json_atomic(manifest, osp.join(out_dir, MANIFEST_NAME))
    if not kept:
        raise ValueError(
            f'no image kept: all {num_images} have an unsure fraction above '
            f'max_unsure={settings["max_unsure"]} (see '
            f'{osp.join(out_dir, MANIFEST_NAME)})'
            '; raise --max-unsure or widen the thresholds')
    return manifest
