# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Satellite building footprints stored as RLE strings in a CSV file."""
import csv
import io
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.rle import parse_rle

EMPTY_RLE_VALUES = ('', '-1')
# csv.field_size_limit while reading (RLE cells can be megabytes).
_FIELD_SIZE_LIMIT = 1 << 30
SPLITS = ('train', 'val', 'all')


class CSVRowError(InputError):
    """A row of a dataset CSV is bad; the message names the file and line.

    An :class:`mmseg_ext.utils.errors.InputError` (so a ``ValueError``):
    ``CSVRowError('message')`` as before, or with the fields
    ``path``/``where``/``reason``/``value``/``expected``; see
    :func:`csv_row_error`.
    """


def csv_row_error(csv_path: str,
                  line: int,
                  message: str,
                  field: Optional[str] = None,
                  **kwargs) -> CSVRowError:
    """``CSVRowError('{csv_path}: line {line}, field {field!r}: {message}')``.

    Args:
        csv_path (str): The CSV file.
        line (int): 1-based line (the header is line 1).
        message (str): What is wrong (the ``reason``).
        field (str, optional): The column. Defaults to None.
        **kwargs: ``value``, ``expected`` of :class:`InputError`.
    """
    where = f'line {line}' + (f', field {field!r}' if field else '')
    return CSVRowError(path=csv_path, where=where, reason=message, **kwargs)


def normalize_rle(value: Optional[str]) -> str:
    """The RLE of a CSV cell with both empty spellings (``''``, ``'-1'``)
    mapped to ``''``."""
    value = (value or '').strip()
    return '' if value in EMPTY_RLE_VALUES else value


def split_indices(num: int,
                  split: str = 'train',
                  val_ratio: float = 0.2,
                  seed: int = 0,
                  fold: Optional[int] = None,
                  num_folds: int = 5) -> List[int]:
    """Row indices of a deterministic train/val split, in row order.

    A permutation of ``range(num)`` by ``np.random.default_rng(seed)`` is
    cut either at ``round(num * val_ratio)`` (first part: val) or, with
    ``fold``, into ``num_folds`` nearly equal parts (part ``fold``: val).
    ``train`` is the complement of ``val``; ``all`` is every row.

    Args:
        num (int): Number of rows.
        split (str): ``'train'``, ``'val'`` or ``'all'``.
        val_ratio (float): Fraction of validation rows, in ``[0, 1)``.
        seed (int): Permutation seed.
        fold (int, optional): Validation fold, in ``[0, num_folds)``.
        num_folds (int): Number of folds, ``>= 2``.

    Returns:
        list[int]: Sorted row indices.
    """
    if split not in SPLITS:
        raise ValueError(f'`split` should be one of {SPLITS}, but got '
                         f'{split!r}')
    if split == 'all':
        return list(range(num))
    perm = np.random.default_rng(seed).permutation(num)
    if fold is None:
        if not 0 <= val_ratio < 1:
            raise ValueError('`val_ratio` should be in [0, 1), but got '
                             f'{val_ratio!r}')
        val = perm[:int(round(num * val_ratio))]
    else:
        if not isinstance(num_folds, int) or num_folds < 2:
            raise ValueError('`num_folds` should be an int >= 2, but got '
                             f'{num_folds!r}')
        if not isinstance(fold, int) or not 0 <= fold < num_folds:
            raise ValueError(f'`fold` should be an int in [0, {num_folds}),'
                             f' but got {fold!r}')
        val = np.array_split(perm, num_folds)[fold]
    mask = np.zeros(num, bool)
    mask[val] = True
    if split == 'train':
        mask = ~mask
    return np.flatnonzero(mask).tolist()


def read_rle_csv(csv_path: str,
                 img_id_column: str = 'img_id',
                 img_path_column: str = 'img_path',
                 rle_column: Optional[str] = 'mask_rle',
                 rle_required: Optional[bool] = None
                 ) -> Tuple[List[Dict[str, Any]], bool]:
    """Read the rows of a competition CSV (no image or RLE checks).

    Args:
        csv_path (str): The CSV file.
        img_id_column (str): Column of the image ids.
        img_path_column (str): Column of the image paths (relative to the
            CSV's folder, or absolute).
        rle_column (str, optional): Column of the RLE masks.
        rle_required (bool, optional): True: the RLE column must exist;
            False: it is not read; None: read it if present.

    Returns:
        tuple: ``(rows, has_rle)``; each row is a dict with ``img_id``,
        ``img_path`` (joined to the CSV's folder), ``mask_rle`` (normalized
        RLE, or None without the column) and ``csv_line`` (1-based line of
        the row in the file; the header is line 1).

    Raises:
        FileNotFoundError: if the CSV does not exist.
        CSVRowError: naming the file, line and field: a file that is not
            UTF-8 (a UTF-8 BOM is fine), an empty file or one with only a
            header, a header without the columns or with a column twice, a
            row with the wrong number of fields or that the CSV module
            cannot parse, an empty id or path, or a duplicate id.
    """
    if not osp.isfile(csv_path):
        raise FileNotFoundError(f'dataset CSV {csv_path!r} does not exist')
    folder = osp.dirname(osp.abspath(csv_path))
    text = _read_utf8(csv_path)
    expected_header = (f'a header such as "{img_id_column},'
                       f'{img_path_column}' +
                       (f',{rle_column}"' if rle_column else '"'))
    rows, seen = [], {}
    reader = csv.reader(io.StringIO(text, newline=''))
    # An RLE of a noisy 1024 x 1024 mask is megabytes, past the csv
    # module's default 128 KiB field limit (a process-wide setting:
    # restored below).
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, _FIELD_SIZE_LIMIT))
    try:
        header = next(reader, None)
        if header is None:
            raise csv_row_error(csv_path, 1, 'the file is empty',
                                expected=expected_header)
        header = [h.strip() for h in header]
        dups = sorted({h for h in header if h and header.count(h) > 1})
        if dups:
            raise csv_row_error(
                csv_path, 1, f'the header has the column(s) {dups} more than '
                'once', value=','.join(header),
                expected='each column name once')
        required = [img_id_column, img_path_column]
        has_rle = rle_column is not None and rle_column in header
        if rle_required:
            required.append(rle_column)
        missing = [c for c in required if c not in header]
        if missing:
            raise csv_row_error(
                csv_path, 1, f'the header should have the columns '
                f'{required}, but it has {header} (missing {missing})')
        if rle_required is False:
            has_rle = False
        id_col = header.index(img_id_column)
        path_col = header.index(img_path_column)
        rle_col = header.index(rle_column) if has_rle else None
        line = 1
        for fields in reader:
            line = reader.line_num
            if not fields or not any(x.strip() for x in fields):
                continue  # blank line
            if len(fields) != len(header):
                raise csv_row_error(
                    csv_path, line, f'the row should have {len(header)} '
                    f'fields ({",".join(header)}), but it has '
                    f'{len(fields)}: {_short(",".join(fields))}')
            img_id = fields[id_col].strip()
            rel = fields[path_col].strip()
            for name, value in ((img_id_column, img_id),
                                (img_path_column, rel)):
                if not value:
                    raise csv_row_error(
                        csv_path, line, f'`{img_id_column}` and '
                        f'`{img_path_column}` should not be empty, but got '
                        f'{img_id!r} and {rel!r}', field=name)
            if img_id in seen:
                raise csv_row_error(
                    csv_path, line, f'duplicate {img_id_column} {img_id!r} '
                    f'(first on line {seen[img_id]})', field=img_id_column)
            seen[img_id] = line
            rows.append(
                dict(
                    img_id=img_id,
                    img_path=osp.normpath(osp.join(folder, rel)),
                    mask_rle=normalize_rle(fields[rle_col])
                    if has_rle else None,
                    csv_line=line))
    except csv.Error as e:
        # e.g. an unterminated quote at the end of the file
        raise csv_row_error(csv_path, reader.line_num or 1,
                            f'not a valid CSV row ({e})') from None
    finally:
        csv.field_size_limit(old_limit)
    if not rows:
        raise csv_row_error(
            csv_path, line + 1, 'the file has a header but no rows',
            expected='one row per image after the header')
    return rows, has_rle


def _read_utf8(csv_path: str) -> str:
    """The text of ``csv_path`` (UTF-8, optional BOM), or a CSVRowError
    naming the line of the first byte that is not UTF-8."""
    with open(csv_path, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        line = data.count(b'\n', 0, e.start) + 1
        hint = ' (a UTF-16 BOM: save the file as UTF-8)' if data[:2] in (
            b'\xff\xfe', b'\xfe\xff') else ''
        raise csv_row_error(
            csv_path, line, f'byte {e.start} is not UTF-8{hint}',
            value=data[e.start:e.start + 4],
            expected='a UTF-8 text file') from None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + '...'


@DATASETS.register_module()
class BuildingRLEDataset(BaseSegDataset):
    """Binary building segmentation from a competition CSV of RLE masks.

    Reads ``ann_file`` (``img_id,img_path,mask_rle``; a test CSV has no
    ``mask_rle`` column), with image paths relative to the CSV's folder.
    Each data info keeps the row's RLE string (``mask_rle``, ``''`` when
    empty: both ``''`` and ``'-1'`` mean no building); it is decoded by the
    :class:`LoadRLEAnnotations` transform when a sample is loaded, so a
    dataset of thousands of 1024 x 1024 masks costs only its strings in
    memory. The one class is ``building`` (``C = 1``, label map 0/1; pack it
    for a sigmoid head with ``PackLabelRegions(regions=[[1]])``).

    Checks at init (cheap): the CSV's columns and fields, duplicate ids,
    that each image file exists and each RLE string is valid
    (:func:`mmseg_ext.utils.parse_rle`: syntax, order, and the range when
    ``image_size`` is known). Checked at load: that the image decodes and
    the runs fit in it. Every error names the CSV file and line.

    Splits are deterministic: ``split='train'``/``'val'`` take a permutation
    of the rows by ``seed`` and hold out ``val_ratio`` of them, or, with
    ``fold``, fold ``fold`` of ``num_folds``; ``'all'`` takes every row
    (use it for ``test.csv``). Rows keep their CSV order within a split.

    Image size: the masks are decoded at the loaded image's size. Give
    ``image_size=(H, W)`` when every image has that size (the competition's
    training tiles are 1024 x 1024): it is stored as ``height``/``width`` in
    each data info (so :class:`RLEPixelCounter` needs no image header), the
    RLE range is checked at init, and a loaded image of another size is an
    error.

    Args:
        ann_file (str): CSV path, relative to ``data_root``.
            Defaults to ``'train.csv'``.
        split (str): ``'train'``, ``'val'`` or ``'all'``. Defaults to
            ``'train'``.
        val_ratio (float): Held-out fraction without ``fold``.
            Defaults to 0.2.
        seed (int): Split seed. Defaults to 0.
        fold (int, optional): Validation fold (``val_ratio`` is then unused).
            Defaults to None.
        num_folds (int): Number of folds. Defaults to 5.
        image_size (tuple[int, int], optional): ``(H, W)`` of every image.
            Defaults to None (read from each image).
        img_id_column (str): Defaults to ``'img_id'``.
        img_path_column (str): Defaults to ``'img_path'``.
        rle_column (str): Defaults to ``'mask_rle'``.
        check_images (bool): Check at init that each image file exists.
            Defaults to True.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``pipeline``, ``test_mode``, ...).

    Raises:
        CSVRowError: naming the CSV file and line for a bad row (at init, or
            when the sample is loaded).

    Examples:
        >>> train = dict(type='BuildingRLEDataset', data_root='data/building',
        ...              ann_file='train.csv', split='train', val_ratio=0.2)
        >>> test = dict(type='BuildingRLEDataset', data_root='data/building',
        ...             ann_file='test.csv', split='all', test_mode=True)
    """
    METAINFO = dict(classes=('building', ), palette=[[255, 255, 255]])

    def __init__(self,
                 ann_file: str = 'train.csv',
                 split: str = 'train',
                 val_ratio: float = 0.2,
                 seed: int = 0,
                 fold: Optional[int] = None,
                 num_folds: int = 5,
                 image_size: Optional[Sequence[int]] = None,
                 img_id_column: str = 'img_id',
                 img_path_column: str = 'img_path',
                 rle_column: str = 'mask_rle',
                 check_images: bool = True,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'`split` should be one of {SPLITS}, but got '
                             f'{split!r}')
        if image_size is not None:
            if (len(image_size) != 2
                    or not all(isinstance(v, int) and v > 0
                               for v in image_size)):
                raise ValueError('`image_size` should be None or (H, W) '
                                 f'positive ints, but got {image_size!r}')
            image_size = tuple(image_size)
        if reduce_zero_label:
            raise ValueError('`reduce_zero_label` should be False for '
                             'BuildingRLEDataset (0 is background, 1 is '
                             'building), but got True')
        # Validated here so a bad value fails at build, not at full_init.
        split_indices(0, split, val_ratio, seed, fold, num_folds)
        self.split = split
        self.val_ratio = val_ratio
        self.seed = seed
        self.fold = fold
        self.num_folds = num_folds
        self.image_size = image_size
        self.img_id_column = img_id_column
        self.img_path_column = img_path_column
        self.rle_column = rle_column
        self.check_images = check_images
        self.has_rle = None
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read, check and split the CSV rows into data infos."""
        csv_path = self.ann_file
        rows, self.has_rle = read_rle_csv(
            csv_path,
            self.img_id_column,
            self.img_path_column,
            self.rle_column,
            rle_required=True if self.split != 'all' else None)
        size = None
        if self.image_size is not None:
            size = self.image_size[0] * self.image_size[1]
        keep = split_indices(
            len(rows), self.split, self.val_ratio, self.seed, self.fold,
            self.num_folds)
        data_list = []
        for i in keep:
            row = rows[i]
            line = row['csv_line']
            if self.check_images and not osp.isfile(row['img_path']):
                raise csv_row_error(
                    csv_path, line, f'image {row["img_path"]!r} of '
                    f'{row["img_id"]!r} does not exist')
            rle = row['mask_rle']
            if rle:
                try:
                    # Without image_size only the syntax and order are
                    # checked here; the range is checked at load.
                    parse_rle(rle, size if size is not None else 2**62)
                except InputError as e:
                    raise e.located(
                        csv_path, f'line {line} ({row["img_id"]}), field '
                        f'{self.rle_column!r}', cls=CSVRowError) from None
            info = dict(
                img_path=row['img_path'],
                img_id=row['img_id'],
                mask_rle=rle,
                csv_path=csv_path,
                csv_line=line,
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[])
            if self.image_size is not None:
                info['height'], info['width'] = self.image_size
            data_list.append(info)
        return data_list

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline; errors are re-raised naming the CSV line."""
        try:
            return super().prepare_data(idx)
        except CSVRowError:
            raise
        except Exception as e:  # noqa: BLE001  (any loader error)
            info = self.get_data_info(idx)
            raise csv_row_error(
                info.get('csv_path', self.ann_file),
                info.get('csv_line', -1),
                f'cannot load {info.get("img_id")!r} '
                f'({info.get("img_path")}): {type(e).__name__}: {e}') from e

    def get_pixel_counter(self) -> dict:
        """``ClassWeightHook`` counts straight from the RLE strings."""
        return dict(type='RLEPixelCounter')


__all__ = [
    'BuildingRLEDataset', 'CSVRowError', 'read_rle_csv', 'split_indices',
    'normalize_rle'
]
