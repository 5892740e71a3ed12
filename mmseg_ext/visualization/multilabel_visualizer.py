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
from .multilabel_drawing import (_blend, blend_multilabel_masks,  # noqa: F401
                                 class_crops, distinct_palette)

__all__ = [
    'MultiLabelSegLocalVisualizer', 'blend_multilabel_masks', 'class_crops',
    'distinct_palette'
]


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
