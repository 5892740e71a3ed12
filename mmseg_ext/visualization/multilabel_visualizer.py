# Copyright (c) mmseg_ext contributors. All rights reserved.
"""MMSeg's ``SegLocalVisualizer`` for multi-label (overlapping) masks."""
from numbers import Number
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dist import master_only
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from mmseg_ext.utils.multilabel import as_unpacked, is_packed

__all__ = [
    'MultiLabelSegLocalVisualizer', 'blend_multilabel_masks', 'class_crops',
    'distinct_palette'
]


def distinct_palette(num_colors: int) -> List[List[int]]:
    """``num_colors`` well-separated RGB colours, always the same.

    Hues step by the golden ratio around the colour wheel (neighbouring
    classes get far-apart hues), with saturation and value alternating so
    that close hues of distant classes still differ.

    Args:
        num_colors (int): How many colours.

    Returns:
        list[list[int]]: ``num_colors`` ``[r, g, b]`` lists in ``[0, 255]``.

    Raises:
        ValueError: if ``num_colors`` is not a non-negative int.
    """
    if isinstance(num_colors, bool) or not isinstance(
            num_colors, (int, np.integer)) or num_colors < 0:
        raise ValueError('`num_colors` should be an int >= 0, but got '
                         f'{num_colors!r}')
    idx = np.arange(int(num_colors))
    hsv = np.stack([
        (idx * 0.618033988749895 % 1.0) * 180,  # OpenCV hue: [0, 180)
        np.where(idx % 2 == 0, 255, 170),
        np.where(idx // 2 % 2 == 0, 255, 200),
    ], axis=-1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(int).tolist()


def class_crops(masks: np.ndarray) -> List[Optional[tuple]]:
    """Per class, ``(x, y, crop)``: its mask cropped to its bounding box.

    Args:
        masks (np.ndarray): ``(C, H, W)`` binary masks (nonzero = class).

    Returns:
        list[tuple | None]: ``(x, y, (h, w) uint8 crop in {0, 1})`` per
        class, None for an empty class. Later per-class work (blending,
        contours, components) then costs the box, not the image.
    """
    crops = []
    for mask in masks:
        if mask.dtype == np.bool_:
            mask = mask.view(np.uint8)
        elif mask.dtype != np.uint8 or mask.max(initial=0) > 1:
            mask = (mask != 0).view(np.uint8)
        x, y, w, h = cv2.boundingRect(mask)
        crops.append(None if w == 0 else (x, y, mask[y:y + h, x:x + w]))
    return crops


def blend_multilabel_masks(image: np.ndarray,
                           masks: np.ndarray,
                           palette: Sequence[Sequence[int]],
                           alpha: float = 0.5,
                           ignore: Optional[np.ndarray] = None,
                           ignore_color: Optional[Sequence[int]] = None
                           ) -> np.ndarray:
    """Blend ``(C, H, W)`` overlapping masks over an image.

    A pixel of ``k >= 1`` classes becomes ``(1 - alpha) * image + alpha *
    mean(colours of its k classes)``, rounded; a pixel of no class keeps
    the image. Ignored pixels (``ignore``) are blended with
    ``ignore_color`` instead (left as the image when it is None).

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 image (RGB).
        masks (np.ndarray): ``(C, H, W)`` binary masks (nonzero = class).
        palette (Sequence[Sequence[int]]): At least ``C`` colours (RGB).
        alpha (float): Opacity of the colours. Defaults to 0.5.
        ignore (np.ndarray, optional): ``(H, W)`` bool, ignored pixels.
            Defaults to None.
        ignore_color (Sequence[int], optional): Colour of ignored pixels.
            Defaults to None.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 image.

    Raises:
        ValueError: if the shapes do not fit or the palette is too short.

    Examples:
        >>> masks = np.zeros((2, 1, 3), np.uint8)
        >>> masks[0, 0, :2] = 1
        >>> masks[1, 0, 1] = 1
        >>> blend_multilabel_masks(np.full((1, 3, 3), 100, np.uint8), masks,
        ...                        [[240, 0, 0], [0, 0, 240]])[0].tolist()
        [[170, 50, 50], [110, 50, 110], [100, 100, 100]]
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or image.ndim != 3 or \
            masks.shape[1:] != image.shape[:2]:
        raise ValueError('`masks` should have shape (C, H, W) with (H, W) '
                         f'of the (H, W, 3) image {image.shape}, but got '
                         f'{masks.shape}')
    if len(palette) < masks.shape[0]:
        raise ValueError(f'`palette` should have C={masks.shape[0]} colours, '
                         f'but got {len(palette)}')
    return _blend(image, class_crops(masks), palette, alpha, ignore,
                  ignore_color)


def _blend(image: np.ndarray, crops: Sequence[Optional[tuple]],
           palette: Sequence[Sequence[int]], alpha: float,
           ignore: Optional[np.ndarray],
           ignore_color: Optional[Sequence[int]]) -> np.ndarray:
    """:func:`blend_multilabel_masks` on :func:`class_crops`."""
    colors = np.asarray(palette, dtype=np.float32)
    count = np.zeros(image.shape[:2], dtype=np.float32)
    total = np.zeros(image.shape[:2] + (3, ), dtype=np.float32)
    for k, crop in enumerate(crops):
        if crop is None:
            continue
        x, y, mask = crop
        h, w = mask.shape
        count[y:y + h, x:x + w] += mask
        total[y:y + h, x:x + w] += mask[..., None] * colors[k]
    covered = count > 0
    out = image.astype(np.float32)
    # image * (1 - alpha) + alpha * total / count, where count > 0
    weight = np.divide(alpha, count, out=np.zeros_like(count), where=covered)
    out *= np.where(covered, 1 - alpha, 1).astype(np.float32)[..., None]
    out += total * weight[..., None]
    if ignore is not None and ignore_color is not None:
        ignore = np.asarray(ignore, dtype=bool)
        out[ignore] = out[ignore] * (1 - alpha) + np.asarray(
            ignore_color, dtype=np.float32) * alpha
    # a convex combination of uint8 values: no clipping needed
    return np.rint(out, out=out).astype(np.uint8)


@VISUALIZERS.register_module()
class MultiLabelSegLocalVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` that also draws multi-label masks.

    MMSeg's visualizer reads ``pred_sem_seg`` / ``gt_sem_seg`` as one
    ``(1, H, W)`` label map. Multi-label models
    (:class:`MultiLabelEncoderDecoder`, binary ones too) give ``(C, H, W)``
    masks whose classes overlap; this visualizer draws them, and hands
    ordinary label maps to MMSeg's drawing, so one ``visualizer`` config
    serves softmax and multi-label models. ``SegVisualizationHook`` and
    ``tools/test.py --show-dir`` use it unchanged.

    How a ``sem_seg.data`` is read (its dtype tells them apart):

    - int16 ``(K, H, W)``: packed ground truth from
      :class:`PackMultiLabelSegInputs` (a data sample straight from the
      dataset); unpacked with :func:`unpack_multilabel_torch` for ``C`` =
      the sample's ``num_classes`` metainfo, else the number of classes of
      ``dataset_meta``. Pixels with a clear valid bit are ignored.
    - uint8 / bool ``(C, H, W)``: masks. The prediction of a multi-label
      model, or the ground truth after
      :class:`MultiLabelSegDataPreProcessor` unpacked it (what
      ``SegVisualizationHook`` gets: ``{0, 1, ignore_index}``, ignored
      pixels are ``ignore_index`` in every class). A uint8 ``(1, H, W)``
      with values other than 0, 1 and ``ignore_index`` is a label map.
    - any other integer ``(C, H, W)`` with ``C > 1``: masks (``== 1``).
    - anything else (MMSeg's int64 ``(1, H, W)`` label maps): MMSeg's
      ``SegLocalVisualizer`` draws it.

    Drawing masks: each pixel of one or more classes is blended with the
    mean colour of its classes (:func:`blend_multilabel_masks`); pixels of
    no class keep the image (MMSeg's drawing darkens them); ignored pixels
    get ``ignore_color``. Then, per class, its outline in the class colour
    (``with_contours``) keeps overlapping bones apart, and, with
    ``with_labels``, its name in a box of its colour (MMSeg's style)
    centred on its largest connected component. Colours come from the
    dataset meta ``palette``; when it is absent or shorter than ``C``,
    :func:`distinct_palette` gives all ``C``. If the image is not the size
    of the masks (a pipeline that resized and updated ``ori_shape``), it is
    resized to them.

    Args:
        name (str): Instance name. Defaults to ``'visualizer'``.
        image (np.ndarray, optional): Image to draw on. Defaults to None.
        vis_backends (list[dict], optional): Visual backends, e.g.
            ``[dict(type='LocalVisBackend')]``. Defaults to None.
        save_dir (str, optional): Where backends save. Defaults to None.
        classes (list[str], optional): Class names; the dataset meta that
            the runner sets replaces them. Defaults to None.
        palette (list[list[int]], optional): RGB colours. Defaults to None
            (MMSeg's default with ``classes`` None, else generated).
        dataset_name (str, optional): As MMSeg's. Defaults to None.
        alpha (float): Opacity of the class colours, in ``[0, 1]``; also
            used for label maps. Defaults to 0.5 (the X-ray stays visible
            under overlapping bones; MMSeg's default is 0.8).
        with_contours (bool): Outline each class of multi-label masks.
            Defaults to True.
        contour_thickness (int): Outline width in pixels. Defaults to 1.
        ignore_index (int): Value of ignored pixels in unpacked ``uint8``
            ground truth (the data preprocessor's). Defaults to 255.
        ignore_color (tuple[int], optional): RGB colour of ignored pixels;
            None leaves them as the image. Defaults to ``(128, 128, 128)``.
        **kwargs: Passed to ``mmengine.visualization.Visualizer``.

    Raises:
        ValueError: on bad arguments; when drawing, on a packed label whose
            channel count does not fit the number of classes.

    Examples:
        >>> visualizer = dict(type='MultiLabelSegLocalVisualizer',
        ...                   vis_backends=[dict(type='LocalVisBackend')],
        ...                   name='visualizer')
        >>> vis = MultiLabelSegLocalVisualizer(
        ...     classes=['a', 'b'], palette=[[255, 0, 0], [0, 0, 255]])
        >>> sample = SegDataSample(pred_sem_seg=PixelData(
        ...     data=torch.randint(0, 2, (2, 8, 8), dtype=torch.uint8)))
        >>> vis.add_datasample('x', np.zeros((8, 8, 3), np.uint8), sample,
        ...                    out_file='x.png')
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[Dict]] = None,
                 save_dir: Optional[str] = None,
                 classes: Optional[List] = None,
                 palette: Optional[List] = None,
                 dataset_name: Optional[str] = None,
                 alpha: float = 0.5,
                 with_contours: bool = True,
                 contour_thickness: int = 1,
                 ignore_index: int = 255,
                 ignore_color: Optional[Tuple[int, int,
                                              int]] = (128, 128, 128),
                 **kwargs) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, Number) or \
                not 0 <= alpha <= 1:
            raise ValueError(f'`alpha` should be in [0, 1], but got {alpha!r}')
        if not isinstance(with_contours, bool):
            raise TypeError('`with_contours` should be a bool, but got '
                            f'{with_contours!r}')
        if isinstance(contour_thickness, bool) or not isinstance(
                contour_thickness, int) or contour_thickness < 1:
            raise ValueError('`contour_thickness` should be an int >= 1, but '
                             f'got {contour_thickness!r}')
        if isinstance(ignore_index, bool) or not isinstance(
                ignore_index, int) or not 2 <= ignore_index <= 255:
            raise ValueError('`ignore_index` should be an int in [2, 255] '
                             '(unpacked targets are uint8 {0, 1, '
                             f'ignore_index}}), but got {ignore_index!r}')
        if ignore_color is not None and (
                len(ignore_color) != 3 or any(
                    isinstance(c, bool) or not isinstance(c, int)
                    or not 0 <= c <= 255 for c in ignore_color)):
            raise ValueError('`ignore_color` should be None or 3 ints in '
                             f'[0, 255] (RGB), but got {ignore_color!r}')
        super().__init__(name, image, vis_backends, save_dir,
                         dataset_name=dataset_name, alpha=alpha, **kwargs)
        # MMSeg 1.2.2's __init__ passes (palette, classes) to
        # set_dataset_meta(classes, palette): set them again, in order.
        if classes or palette:
            self.set_dataset_meta(classes, palette, dataset_name)
        self.with_contours = with_contours
        self.contour_thickness = contour_thickness
        self.ignore_index = ignore_index
        self.ignore_color = None if ignore_color is None else tuple(
            ignore_color)

    def set_dataset_meta(self,
                         classes: Optional[List] = None,
                         palette: Optional[List] = None,
                         dataset_name: Optional[str] = None) -> None:
        """As MMSeg's; ``classes`` without a fitting ``palette`` get
        :func:`distinct_palette` (MMSeg would fail on the length)."""
        if classes and (not palette or len(palette) != len(classes)):
            palette = distinct_palette(len(classes))
        super().set_dataset_meta(classes, palette, dataset_name)

    # ------------------------------------------------------------- reading
    def _read_masks(self, sem_seg: PixelData,
                    num_classes: Optional[int]) -> Optional[tuple]:
        """``(masks (C, H, W), ignore (H, W) bool | None)``, or None for a
        label map (see the class docstring)."""
        data = sem_seg.data
        if isinstance(data, np.ndarray):
            data = torch.from_numpy(data)
        data = data.detach().cpu()
        if data.dim() == 2:
            data = data[None]
        if data.dim() != 3:
            return None
        if is_packed(data):
            if num_classes is None:
                raise ValueError(
                    'a packed int16 `gt_sem_seg` needs the number of classes '
                    '(the sample\'s `num_classes` metainfo or the dataset '
                    'meta `classes`), but got neither for shape '
                    f'{tuple(data.shape)}')
            data = as_unpacked(data, num_classes, self.ignore_index)
        elif data.dtype == torch.bool:
            return data.numpy(), None
        elif data.dtype == torch.uint8:
            if data.shape[0] == 1 and ((data > 1) &
                                       (data != self.ignore_index)).any():
                return None  # a uint8 label map
        elif data.shape[0] == 1 or data.is_floating_point():
            return None
        if data.dtype == torch.uint8 and data.max() <= 1:
            # predictions: {0, 1} already, nothing ignored (no copy)
            return data.numpy().view(np.bool_), None
        ignored = data == self.ignore_index
        ignore = ignored[0].numpy()
        for k in range(1, ignored.shape[0]):  # any over classes
            ignore |= ignored[k].numpy()
        return (data == 1).numpy(), (ignore if ignore.any() else None)

    @staticmethod
    def _fit_image(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """The image at ``(H, W)`` = ``shape`` (resized if it is not)."""
        if tuple(image.shape[:2]) == tuple(shape):
            return image
        return mmcv.imresize(image, (int(shape[1]), int(shape[0])))

    # ------------------------------------------------------------- drawing
    def _draw_sem_seg(self,
                      image: np.ndarray,
                      sem_seg: PixelData,
                      classes: Optional[List],
                      palette: Optional[List],
                      with_labels: Optional[bool] = True,
                      num_classes: Optional[int] = None) -> np.ndarray:
        """Draw multi-label masks, or a label map as MMSeg does.

        Args:
            image (np.ndarray): ``(H, W, 3)`` RGB image.
            sem_seg (PixelData): Masks, packed labels or a label map.
            classes (list[str], optional): Class names.
            palette (list[list[int]], optional): RGB colours.
            with_labels (bool, optional): Write class names. Defaults to
                True.
            num_classes (int, optional): ``C`` of a packed label. Defaults
                to None (``len(classes)``).

        Returns:
            np.ndarray: The drawn ``(H, W, 3)`` RGB image.
        """
        if num_classes is None and classes:
            num_classes = len(classes)
        read = self._read_masks(sem_seg, num_classes)
        shape = tuple(sem_seg.shape)
        image = self._fit_image(image, shape)
        if read is None:  # MMSeg's path, with a palette long enough
            classes = list(classes or [])
            if not palette or len(palette) < len(classes):
                palette = distinct_palette(len(classes))
            return super()._draw_sem_seg(image, sem_seg, classes, palette,
                                         with_labels)
        masks, ignore = read
        names, colors = self._class_meta(masks.shape[0], classes, palette)
        crops = class_crops(masks)
        drawn = _blend(image, crops, colors, self.alpha, ignore,
                       self.ignore_color)
        if self.with_contours:
            self._draw_contours(drawn, crops, colors)
        if with_labels:
            self._draw_class_names(drawn, crops, names, colors)
        self.set_image(drawn)
        return drawn

    @staticmethod
    def _class_meta(num_classes: int, classes: Optional[Sequence[str]],
                    palette: Optional[Sequence]) -> tuple:
        """``C`` names (indices where ``classes`` is short) and colours."""
        names = list(classes or [])[:num_classes]
        names += [str(k) for k in range(len(names), num_classes)]
        if not palette or len(palette) < num_classes:
            palette = distinct_palette(num_classes)
        colors = [tuple(int(v) for v in c) for c in palette[:num_classes]]
        return names, colors

    def _draw_contours(self, drawn: np.ndarray,
                       crops: Sequence[Optional[tuple]],
                       colors: Sequence[tuple]) -> None:
        """Outline every class (external contours) in its colour."""
        for k, crop in enumerate(crops):
            if crop is None:
                continue
            x, y, mask = crop
            contours, _ = cv2.findContours(
                np.ascontiguousarray(mask), cv2.RETR_EXTERNAL,
                cv2.CHAIN_APPROX_NONE, offset=(x, y))
            cv2.drawContours(drawn, contours, -1, colors[k],
                             self.contour_thickness)

    @staticmethod
    def _largest_component_loc(crop: tuple) -> np.ndarray:
        """``(x, y)`` to label a class: the pixel of its largest
        8-connected component nearest to that component's centroid (on the
        bone even when it is curved; mid-bone for long bones, where MMSeg's
        fullest-row rule picks a flared end).

        Args:
            crop (tuple): ``(x, y, mask)`` from :func:`class_crops`.
        """
        x, y, mask = crop
        _, labels, stats, centroids = cv2.connectedComponentsWithStats(
            np.ascontiguousarray(mask), connectivity=8)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        rows, cols = np.nonzero(labels == largest)
        cx, cy = centroids[largest]
        i = int(np.argmin((cols - cx)**2 + (rows - cy)**2))
        return np.array([x + cols[i], y + rows[i]])

    def _draw_class_names(self, drawn: np.ndarray,
                          crops: Sequence[Optional[tuple]],
                          names: Sequence[str],
                          colors: Sequence[tuple]) -> None:
        """Each present class's name in a box of its colour, centred on its
        largest component (kept inside the image). MMSeg's box style at
        half its font size, so that 29 small bones stay visible."""
        font = cv2.FONT_HERSHEY_SIMPLEX
        img_h, img_w = drawn.shape[:2]
        font_scale = min(img_h, img_w) / 1000
        thickness = 1 if min(img_h, img_w) < 600 else 2
        for k, crop in enumerate(crops):
            if crop is None:
                continue
            cx, cy = self._largest_component_loc(crop)
            (w, h), baseline = cv2.getTextSize(names[k], font, font_scale,
                                               thickness)
            box_w, box_h = w + 2 * thickness, h + baseline + 2 * thickness
            x0 = int(min(max(cx - box_w // 2, 0), max(img_w - box_w, 0)))
            y0 = int(min(max(cy - box_h // 2, 0), max(img_h - box_h, 0)))
            corner = (x0 + box_w, y0 + box_h)
            cv2.rectangle(drawn, (x0, y0), corner, colors[k], -1)
            cv2.rectangle(drawn, (x0, y0), corner, (0, 0, 0), thickness)
            cv2.putText(drawn, names[k], (x0 + thickness, y0 + thickness + h),
                        font, font_scale, (255, 255, 255), thickness,
                        cv2.LINE_AA)

    @master_only
    def add_datasample(
            self,
            name: str,
            image: np.ndarray,
            data_sample: Optional[SegDataSample] = None,
            draw_gt: bool = True,
            draw_pred: bool = True,
            show: bool = False,
            wait_time: float = 0,
            # TODO: Supported in mmengine's Viusalizer.
            out_file: Optional[str] = None,
            step: int = 0,
            with_labels: Optional[bool] = True) -> None:
        """Draw a data sample and save it to every backend (as MMSeg).

        Ground truth left, prediction right when both are drawn; ``show``
        displays it; ``out_file`` writes it with ``mmcv.imwrite``, else it
        goes to the visual backends (``add_image``). Depth maps are drawn
        as MMSeg does.

        Args:
            name (str): The image identifier.
            image (np.ndarray): ``(H, W, 3)`` RGB image.
            data_sample (SegDataSample, optional): With ``gt_sem_seg``
                and/or ``pred_sem_seg``. Defaults to None.
            draw_gt (bool): Draw the ground truth. Defaults to True.
            draw_pred (bool): Draw the prediction. Defaults to True.
            show (bool): Display the drawn image. Defaults to False.
            wait_time (float): Display interval (s). Defaults to 0.
            out_file (str, optional): Write the drawing here instead of to
                the backends. Defaults to None.
            step (int): Global step. Defaults to 0.
            with_labels (bool, optional): Write class names. Defaults to
                True.

        Raises:
            ValueError: if a segmentation is to be drawn without class
                information in ``dataset_meta``.
        """
        classes = self.dataset_meta.get('classes', None)
        palette = self.dataset_meta.get('palette', None)
        num_classes = None
        if data_sample is not None:
            num_classes = data_sample.metainfo.get('num_classes')

        drawn = {}
        for kind, wanted in (('gt', draw_gt), ('pred', draw_pred)):
            if not wanted or data_sample is None:
                continue
            img_data = None
            if f'{kind}_sem_seg' in data_sample:
                if classes is None:
                    raise ValueError(
                        '`dataset_meta` should have `classes` to draw '
                        f'`{kind}_sem_seg`, but got {self.dataset_meta!r}')
                img_data = self._draw_sem_seg(
                    image, data_sample.get(f'{kind}_sem_seg'), classes,
                    palette, with_labels, num_classes)
            if f'{kind}_depth_map' in data_sample:
                img_data = image if img_data is None else img_data
                img_data = self._draw_depth_map(
                    img_data, data_sample.get(f'{kind}_depth_map'))
            if img_data is not None:
                drawn[kind] = img_data

        if len(drawn) == 2:
            drawn_img = np.concatenate((drawn['gt'], drawn['pred']), axis=1)
        else:
            drawn_img = next(iter(drawn.values()), image)

        if show:
            self.show(drawn_img, win_name=name, wait_time=wait_time)

        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn_img), out_file)
        else:
            self.add_image(name, drawn_img, step)
