# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS volume evaluation of 2D slice predictions (one case at a time).

A BraTS model predicts axial slices; Dice and HD95 are defined on the
case volume. :class:`BraTSMetric` puts each slice prediction
``pred_sem_seg.data`` ``(3, H, W)`` (WT, TC, ET; ``H, W = X, Y``) back at
slice ``z = slice_index`` of its case's ``(X, Y, Z)`` volume, from the data
sample's metainfo (``case_id``, ``slice_index``, ``case_slices``,
``brats_case``: the slice cache's index entry; see
``docs/readme/brats_eval.md``). Slices the dataset does not list (outside
the brain's ``slice_range``) are background.

Memory: a slice is kept as ``np.packbits`` of its 3 masks (22 KB for
240 x 240, nothing for an empty slice). In a single process, a case is
finished as soon as all its ``case_slices`` slices have been seen —
reassembled, measured, its outputs written, its buffer freed — so with the
default non-shuffled loader (cases in order) one case is held at a time.
With several ranks, mmengine's ``DefaultSampler`` interleaves the indices,
so no rank sees a whole case: every rank keeps its packed slices, one
entry of ``self.results`` per data sample (mmengine's collection drops the
sampler's padding by position and needs that), and
:meth:`compute_metrics` merges them per case on rank 0, de-duplicating
slices by ``z``, and finishes the cases there one by one. A case still
missing slices after collection (a dataset subset that breaks
``case_slices``) is skipped with a warning, never measured on a partial
volume.

Ground truth: the slice cache's ``label.npy`` (``brats_case['label']``,
packed WT/TC/ET, :mod:`mmseg_ext.utils.multilabel`), else the case's
``seg`` NIfTI (``brats_case['sources']['seg']``, in
``brats_case['label_scheme']``); a case with neither is unlabelled: its
outputs are written, it has no metrics and no per-case CSV row.

nnU-Net's ET post-processing ("nnU-Net for Brain Tumor Segmentation",
Isensee et al., 2020): with ``et_min_voxels=T``, a case whose predicted ET
has fewer than ``T`` voxels loses its ET (those voxels stay TC and WT, i.e.
become necrosis in the labels), because a small predicted ET in a case
without ET costs a whole Dice point under the BraTS convention. With
``search_et_threshold=True`` (on validation), each case's predicted ET
voxel count and its ET Dice with and without ET are kept, and the
candidate ``T`` with the best mean ET Dice is chosen — and kept only if it
beats no post-processing, by the rule of
:func:`mmseg_ext.utils.postprocess.choose_postprocess`. The search scores
ET Dice with the ``brats2020`` empty rule (both empty = 1) whatever
``convention`` is: under ``'nan'`` those cases would drop out of the mean,
and removing a false ET would never count. The choice is logged and
written to ``brats_postprocess.json``, which ``et_min_voxels='....json'``
reads back.
"""
import json
import math
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dist import get_world_size
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from mmseg_ext.datasets.brats.labels import (REGIONS, check_label_scheme,
                                             labels_to_regions,
                                             nest_regions)
from mmseg_ext.datasets.brats.layout import MODALITIES
from mmseg_ext.evaluation.brats_metrics import (CONVENTIONS, HD95_MODES,
                                                compute_region_metrics,
                                                dice_score,
                                                mean_brats_metrics)
from mmseg_ext.evaluation.brats_report import write_reports_csv
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.io import dump_json_atomic
from mmseg_ext.utils.multilabel import unpack_multilabel
from mmseg_ext.utils.postprocess import choose_postprocess
# _brain_mask: kept importable from here (tests, callers of the old place).
from .brats_outputs import (PER_CASE_COLUMNS, BraTSOutputsMixin,  # noqa: F401
                            _brain_mask)

__all__ = ['BraTSMetric', 'PER_CASE_COLUMNS', 'read_et_min_voxels']

#: Metainfo keys the metric needs on every data sample.
REQUIRED_META = ('case_id', 'slice_index', 'case_slices', 'brats_case')
POSTPROCESS_JSON = 'brats_postprocess.json'
_DONE = ('done', )  # a sample whose case was finished in this process


def read_et_min_voxels(path: str) -> Optional[int]:
    """``et_min_voxels`` from a ``brats_postprocess.json`` (None: no op).

    Raises:
        InputError: naming the file for an unreadable file or a value that
            is not null or an integer >= 0.
    """
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(path=path, reason='ET post-processing file',
                         value=f'{type(err).__name__}: {err}',
                         expected='the brats_postprocess.json written by '
                         'BraTSMetric(search_et_threshold=True)') from err
    value = data.get('et_min_voxels', 'missing') if isinstance(
        data, dict) else 'not an object'
    if value is not None and (isinstance(value, bool)
                              or not isinstance(value, int) or value < 0):
        raise InputError(path=path, where="field 'et_min_voxels'",
                         value=value, expected='null or an integer >= 0')
    return value


class _Case:
    """Packed slices of one case seen by this process."""
    __slots__ = ('entry', 'case_slices', 'slices')

    def __init__(self, entry: dict, case_slices: int) -> None:
        self.entry = entry
        self.case_slices = case_slices
        self.slices: Dict[int, tuple] = {}  # z -> (result index, bits)


@METRICS.register_module()
class BraTSMetric(BraTSOutputsMixin, BaseMetric):
    """Per-case Dice / HD95 on WT, TC, ET of slice predictions, with outputs.

    See the module docstring for the reassembly, the ground truth and the
    ET post-processing. Reports ``WT_dice``, ``TC_dice``, ``ET_dice``,
    ``mean_dice``, ``WT_hd95``, ``TC_hd95``, ``ET_hd95``, ``mean_hd95``:
    per-region means over the labelled cases
    (:func:`mean_brats_metrics`: NaN values under ``convention='nan'`` are
    left out), and the mean of the three regions.

    Outputs, with ``out_dir``: ``nifti/{case_id}.nii.gz`` (labels of
    ``label_scheme``, with the affine of the index entry and the header of
    the case's first modality NIfTI), ``reports/{case_id}.json`` and
    ``reports.csv`` (:mod:`mmseg_ext.evaluation.brats_report`),
    ``overlays/{case_id}_z{z:03d}.png``
    (:mod:`mmseg_ext.visualization.brats_overlay`) and ``per_case.csv``.

    Args:
        label_scheme (str): Labels of the NIfTI outputs and the reports.
            Defaults to ``'brats2020'``.
        convention (str): Empty-region values (:data:`CONVENTIONS`).
            Defaults to ``'brats2020'``.
        hd95_mode (str): ``'max'`` or ``'pooled'``. Defaults to ``'max'``.
        per_case_csv (str, optional): Also write the per-case CSV here.
            Defaults to None.
        out_dir (str, optional): Folder of the outputs. Defaults to None
            (metrics only).
        write_nifti (bool): Write the NIfTI predictions. Defaults to True.
        write_report (bool): Write the tumour reports. Defaults to True.
        overlays (dict | None): ``dict(modality='FLAIR', num_largest=3,
            slices=(), scale=2)`` (modality: a physical name of
            :data:`MODALITIES`); None for no overlays. The image comes from
            the slice cache's ``image.npy`` when it holds the modality,
            else from the source NIfTI. Defaults to that dict.
        atlas (str, optional): Atlas label NIfTI on the case grid, for the
            reports. Defaults to None.
        atlas_names (dict | str, optional): Its label names (dict, JSON or
            CSV, see :func:`~mmseg_ext.evaluation.brats_report.
            read_atlas_names`). Defaults to None.
        et_min_voxels (int | str, optional): Remove predicted ET of fewer
            voxels; a path reads ``brats_postprocess.json``.
            Defaults to None.
        search_et_threshold (bool): Choose ``et_min_voxels`` on these
            cases. Defaults to False.
        et_candidates (Sequence[int]): Thresholds tried by the search.
            Defaults to (50, 100, 200, 300, 500, 750, 1000).
        min_gain (float): A threshold is kept only if it raises mean ET
            Dice by more than this. Defaults to 0.
        postprocess_json (str, optional): Where the search writes. Defaults
            to None: ``{out_dir}/brats_postprocess.json``, else the
            Runner's work dir (from the current logger's log file
            ``{work_dir}/{timestamp}/{timestamp}.log``).
        collect_device (str): Defaults to ``'cpu'``.
        prefix (str, optional): Metric name prefix. Defaults to None.

    Raises:
        ValueError: for bad arguments; for a data sample without a needed
            metainfo key (naming it and the ``meta_keys`` to add to
            ``PackMultiLabelSegInputs``); for a prediction whose shape is
            not the case's ``(3, X, Y)``.

    Examples:
        >>> val_evaluator = dict(type='BraTSMetric', search_et_threshold=True,
        ...                      out_dir='work_dirs/brats/val')
        >>> test_evaluator = dict(
        ...     type='BraTSMetric', out_dir='work_dirs/brats/test',
        ...     et_min_voxels='work_dirs/brats/val/brats_postprocess.json')
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 label_scheme: str = 'brats2020',
                 convention: str = 'brats2020',
                 hd95_mode: str = 'max',
                 per_case_csv: Optional[str] = None,
                 out_dir: Optional[str] = None,
                 write_nifti: bool = True,
                 write_report: bool = True,
                 overlays: Optional[dict] = dict(
                     modality='FLAIR', num_largest=3, slices=(), scale=2),
                 atlas: Optional[str] = None,
                 atlas_names: Union[None, str, dict] = None,
                 et_min_voxels: Union[None, int, str] = None,
                 search_et_threshold: bool = False,
                 et_candidates: Sequence[int] = (50, 100, 200, 300, 500, 750,
                                                 1000),
                 min_gain: float = 0.0,
                 postprocess_json: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        check_label_scheme(label_scheme)
        for name, value, choices in (('convention', convention, CONVENTIONS),
                                     ('hd95_mode', hd95_mode, HD95_MODES)):
            if value not in choices:
                raise ValueError(f'`{name}` should be one of '
                                 f'{tuple(choices)}, but got {value!r}')
        self.label_scheme = label_scheme
        self.convention = convention
        self.hd95_mode = hd95_mode
        self.per_case_csv = per_case_csv
        self.out_dir = out_dir
        self.write_nifti = bool(write_nifti)
        self.write_report = bool(write_report)
        if overlays is not None:
            overlays = {**dict(modality='FLAIR', num_largest=3, slices=(),
                               scale=2), **dict(overlays)}
            unknown = set(overlays) - {'modality', 'num_largest', 'slices',
                                       'scale'}
            if unknown or overlays['modality'] not in MODALITIES:
                raise ValueError(
                    '`overlays` should be None or dict(modality=one of '
                    f'{MODALITIES}, num_largest=int, slices=[z, ...], '
                    f'scale=int), but got {overlays!r}')
        self.overlays = overlays
        self.atlas_path = atlas
        self.atlas_names = atlas_names
        self._atlas = None
        if isinstance(et_min_voxels, str):
            et_min_voxels = read_et_min_voxels(et_min_voxels)
        if et_min_voxels is not None and (isinstance(et_min_voxels, bool)
                                          or not isinstance(et_min_voxels,
                                                            int)
                                          or et_min_voxels < 0):
            raise ValueError('`et_min_voxels` should be None, an int >= 0 '
                             'or the path of a brats_postprocess.json, but '
                             f'got {et_min_voxels!r}')
        self.et_min_voxels = et_min_voxels
        self.search_et_threshold = bool(search_et_threshold)
        self.et_candidates = sorted({int(t) for t in et_candidates})
        if not self.et_candidates or self.et_candidates[0] < 1:
            raise ValueError('`et_candidates` should be integers >= 1, but '
                             f'got {et_candidates!r}')
        self.min_gain = float(min_gain)
        self.postprocess_json = postprocess_json
        self._cases: Dict[str, _Case] = OrderedDict()
        self._index_modalities: Dict[str, Optional[list]] = {}

    # -- process ------------------------------------------------------------

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Buffer each slice (packed); finish the cases now complete."""
        finish_here = get_world_size() == 1
        for sample in data_samples:
            meta = self._meta(sample)
            case_id, z = str(meta['case_id']), int(meta['slice_index'])
            entry = meta['brats_case']
            x, y, depth = (int(s) for s in entry['shape'])
            pred = sample['pred_sem_seg']['data']
            pred = pred.cpu().numpy() if hasattr(pred, 'cpu') else \
                np.asarray(pred)
            if pred.shape != (3, x, y) or not 0 <= z < depth:
                raise ValueError(
                    f'case {case_id!r}: `pred_sem_seg` should be (3, X, Y) = '
                    f'(3, {x}, {y}) (WT, TC, ET; no resize in the test '
                    f'pipeline) at a slice_index in [0, {depth}), but got '
                    f'{tuple(pred.shape)} at z={z}')
            mask = pred != 0
            bits = np.packbits(mask) if mask.any() else None
            case = self._cases.get(case_id)
            if case is None:
                case = self._cases[case_id] = _Case(
                    entry, int(meta['case_slices']))
            case.slices[z] = (len(self.results), bits)
            self.results.append(_DONE)
            if finish_here and len(case.slices) >= case.case_slices:
                del self._cases[case_id]
                last = max(i for i, _ in case.slices.values())
                self.results[last] = self._finish(
                    case_id, case.entry,
                    {z: b for z, (_, b) in case.slices.items()})

    @staticmethod
    def _meta(sample: dict) -> dict:
        meta = sample.get('metainfo', sample)
        for key in REQUIRED_META:
            if key not in meta:
                raise ValueError(
                    f'BraTSMetric needs {key!r} in every data sample\'s '
                    'metainfo, but it is missing; add meta_keys=(<the '
                    'default keys>, ' + ', '.join(
                        repr(k) for k in REQUIRED_META) + ') to '
                    'PackMultiLabelSegInputs in the val/test pipeline '
                    '(BraTSDataset provides them)')
        return meta

    def evaluate(self, size: int) -> dict:
        """:meth:`flush_partial`, then collect and compute as
        :meth:`BaseMetric.evaluate`."""
        self.flush_partial()
        return super().evaluate(size)

    def flush_partial(self) -> None:
        """Turn the buffered slices of unfinished cases into their
        results (one per data sample), ready for collection."""
        for case_id, case in self._cases.items():
            first = True
            for z, (index, bits) in case.slices.items():
                self.results[index] = dict(
                    case_id=case_id, z=z, case_slices=case.case_slices,
                    entry=case.entry if first else None, bits=bits)
                first = False
        self._cases.clear()

    # -- one case ------------------------------------------------------------

    def _finish(self, case_id: str, entry: dict, slices: Dict[int, object]
                ) -> dict:
        """Reassemble, post-process, measure and write one case."""
        x, y, depth = (int(s) for s in entry['shape'])
        buf = np.zeros((depth, 3, x, y), dtype=bool)
        for z, bits in slices.items():
            if bits is not None:
                buf[z] = np.unpackbits(bits, count=3 * x * y).reshape(
                    3, x, y).view(bool)
        pred = np.ascontiguousarray(np.moveaxis(buf, 0, -1))
        del buf
        # Measure and report the regions of the label volume written.
        nest_regions(pred)
        et_voxels = int(np.count_nonzero(pred[2]))
        if self.et_min_voxels is not None and et_voxels < self.et_min_voxels:
            pred[2] = False  # ET -> necrosis: TC and WT keep the voxels
        spacing = [float(s) for s in entry['spacing']]
        gt = self._ground_truth(case_id, entry)
        record = dict(kind='case', case_id=case_id, metrics=None,
                      report=None, et_voxels=et_voxels)
        if gt is not None:
            record['metrics'] = compute_region_metrics(
                pred, gt, spacing, self.convention, self.hd95_mode)
            if self.search_et_threshold:
                keep = dice_score(pred[2] if self.et_min_voxels is None else
                                  self._raw_et(slices, x, y, depth), gt[2])
                gt_et = bool(gt[2].any())
                record['et_dice'] = (1.0 if math.isnan(keep) else keep,
                                     0.0 if gt_et else 1.0)
        if self.out_dir:
            record['report'] = self._write_outputs(case_id, entry, pred, gt,
                                                   record['metrics'])
        return record

    @staticmethod
    def _raw_et(slices, x, y, depth) -> np.ndarray:
        et = np.zeros((x, y, depth), dtype=bool)
        for z, bits in slices.items():
            if bits is not None:
                et[..., z] = np.unpackbits(bits, count=3 * x * y).reshape(
                    3, x, y)[2].view(bool)
        return et

    def _ground_truth(self, case_id: str, entry: dict
                      ) -> Optional[np.ndarray]:
        """``(3, X, Y, Z)`` bool from label.npy, else the seg NIfTI."""
        shape = tuple(int(s) for s in entry['shape'])
        path = entry.get('label')
        if path and osp.isfile(path):
            packed = np.load(path, mmap_mode='r')
            depth, x, y = shape[2], shape[0], shape[1]
            if packed.shape != (depth, x, y, 1):
                raise InputError(path=path, where=f'case {case_id!r}',
                                 reason='label.npy shape',
                                 value=packed.shape,
                                 expected=f'(Z, X, Y, 1) = {(depth, x, y, 1)}'
                                 ' of the index entry')
            regions = unpack_multilabel(
                np.asarray(packed).reshape(depth * x, y, 1), 3)
            return np.ascontiguousarray(
                np.moveaxis(regions.reshape(3, depth, x, y) == 1, 1, -1))
        seg = (entry.get('sources') or {}).get('seg')
        if seg:
            from mmseg_ext.datasets.brats.nifti import read_nifti
            img = read_nifti(seg, where=f'case {case_id!r}')
            label = np.asanyarray(img.dataobj)
            if label.shape != shape:
                raise InputError(path=seg, where=f'case {case_id!r}',
                                 reason='label shape', value=label.shape,
                                 expected=f'{shape} of the index entry')
            return labels_to_regions(
                label, entry.get('label_scheme', self.label_scheme), seg)
        if path:
            print_log(f'case {case_id!r}: label {path!r} is missing and no '
                      'seg NIfTI is listed; evaluated as unlabelled',
                      logger='current', level=30)
        return None

    # -- outputs -------------------------------------------------------------

    # -- all cases -----------------------------------------------------------

    def _merge(self, results: list) -> List[dict]:
        """Case records from finished cases and merged slice records."""
        logger: MMLogger = MMLogger.get_current_instance()
        records, partial = {}, OrderedDict()
        for item in results:
            if not isinstance(item, dict):
                continue
            if item.get('kind') == 'case':
                records.setdefault(item['case_id'], item)
                continue
            case = partial.setdefault(item['case_id'], dict(
                entry=None, case_slices=item['case_slices'], slices={}))
            if item['entry'] is not None:
                case['entry'] = item['entry']
            case['slices'][item['z']] = item['bits']
        skipped = []
        for case_id, case in partial.items():
            if case_id in records:
                continue
            if len(case['slices']) < case['case_slices']:
                skipped.append(f'{case_id} ({len(case["slices"])}/'
                               f'{case["case_slices"]})')
                continue
            records[case_id] = self._finish(case_id, case['entry'],
                                            case['slices'])
        if skipped:
            print_log(
                f'BraTSMetric: skipped {len(skipped)} case(s) with missing '
                f'slices (seen/case_slices): {", ".join(skipped)}; does the '
                'dataset list every slice of a case (no indices subset)?',
                logger=logger, level=30)
        return [records[k] for k in sorted(records)]

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Finish the merged cases; means, table, CSVs, ET search."""
        logger: MMLogger = MMLogger.get_current_instance()
        records = self._merge(results)
        labelled = [r for r in records if r['metrics'] is not None]
        if self.out_dir and self.write_report:
            write_reports_csv(osp.join(self.out_dir, 'reports.csv'),
                              [r['report'] for r in records])
        for path in {p for p in (self.per_case_csv, self.out_dir and osp.join(
                self.out_dir, 'per_case.csv')) if p}:
            self._write_per_case(path, labelled)
        if self.search_et_threshold:
            self._search(labelled, logger)
        if not labelled:
            print_log(f'BraTSMetric: {len(records)} case(s), none labelled: '
                      'outputs only, no metrics', logger=logger)
            return {}
        means = mean_brats_metrics([r['metrics'] for r in labelled])
        table = PrettyTable()
        table.add_column('Region', list(REGIONS))
        for key in ('dice', 'hd95'):
            table.add_column(f'{key.upper() if key == "hd95" else "Dice"}',
                             [f'{means[r][key]:.4f}' for r in REGIONS])
        print_log(
            f'BraTS per-region means ({len(labelled)} labelled case(s) of '
            f'{len(records)}, convention {self.convention!r}, hd95_mode '
            f'{self.hd95_mode!r}):\n' + table.get_string(), logger=logger)
        metrics = OrderedDict()
        for key in ('dice', 'hd95'):
            values = [means[r][key] for r in REGIONS]
            for r, v in zip(REGIONS, values):
                metrics[f'{r}_{key}'] = float(v)
            finite = [v for v in values if not math.isnan(v)]
            metrics[f'mean_{key}'] = (math.fsum(finite) / len(finite)
                                      if finite else math.nan)
        return dict(metrics)

    def _search(self, labelled: List[dict], logger) -> None:
        """Choose ``et_min_voxels`` (nnU-Net's rule) and write it."""
        if not labelled:
            print_log('BraTSMetric: no labelled case, no ET threshold search',
                      logger=logger, level=30)
            return
        counts = np.array([r['et_voxels'] for r in labelled])
        keep = np.array([r['et_dice'][0] for r in labelled])
        drop = np.array([r['et_dice'][1] for r in labelled])
        sums = np.array([[keep.sum()]] + [[
            np.where(counts < t, drop, keep).sum()
        ] for t in self.et_candidates])
        candidates = [['et_min_voxels', t] for t in self.et_candidates]
        plan, report = choose_postprocess(sums, len(labelled), ['ET'],
                                          candidates, self.min_gain)
        chosen = plan['ET'][1] if plan else None
        means = {
            ('none' if k == 'none' else k.split()[-1]): v
            for k, v in report['ET'].items()
        }
        print_log(
            f'BraTSMetric ET post-processing search on {len(labelled)} '
            f'case(s): mean ET Dice {means} -> et_min_voxels={chosen} '
            f'({"kept: it helps" if plan else "none helps: not kept"})',
            logger=logger)
        path = self._postprocess_path(logger)
        if path is None:
            print_log('BraTSMetric: brats_postprocess.json not written: give'
                      ' out_dir or postprocess_json', logger=logger, level=30)
            return
        dump_json_atomic(
            dict(et_min_voxels=chosen, candidates=self.et_candidates,
                 mean_et_dice=means, num_cases=len(labelled),
                 min_gain=self.min_gain,
                 rule='ET of fewer than et_min_voxels voxels becomes NCR; '
                 'kept only if it raises mean ET Dice (empty ET in both '
                 'scored 1)'), path)
        print_log(f'BraTSMetric: wrote {path}', logger=logger)

    def _postprocess_path(self, logger) -> Optional[str]:
        if self.postprocess_json:
            return self.postprocess_json
        if self.out_dir:
            return osp.join(self.out_dir, POSTPROCESS_JSON)
        log_file = getattr(logger, 'log_file', None)
        if log_file:  # Runner: {work_dir}/{timestamp}/{timestamp}.log
            return osp.join(osp.dirname(osp.dirname(log_file)),
                            POSTPROCESS_JSON)
        return None
