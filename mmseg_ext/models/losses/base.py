# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The base class of the losses of :mod:`mmseg_ext.models.losses`."""
import math
from numbers import Number
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .utils import (ClassWeight, check_logits, check_loss_name,
                    check_reduction, class_weight_tensor,
                    normalize_class_weight, resolve_check)


class LossArgs(NamedTuple):
    """The resolved forward arguments :meth:`BaseSegLoss.compute` gets.

    Their names are keyword arguments of the plain loss functions
    (``softmax_focal_loss(logits, label, gamma=g, **args._asdict())``).
    """
    #: ``(C, )`` float32 on the logits' device, or None.
    class_weight: Optional[torch.Tensor]
    #: Per-pixel weights as passed to the forward, or None.
    weight: Optional[torch.Tensor]
    #: The forward's ``ignore_index``, else the module's.
    ignore_index: Optional[int]
    #: ``reduction_override``, else the module's ``reduction``.
    reduction: str
    #: As passed to the forward.
    avg_factor: Optional[float]
    #: ``'sync'``, ``'async'`` or ``'off'``: the value checks of this call.
    check: str


class BaseSegLoss(nn.Module):
    """Bookkeeping shared by the losses of this package (not registered).

    Holds what every loss module repeats: argument checks, ``class_weight``
    (settable at any time, e.g. by ``ClassWeightHook``, read at every
    forward), ``loss_name``, ``loss_weight``, ``reduction`` and
    ``reduction_override``, ``ignore_index`` precedence (the forward's wins:
    mmseg's decode heads pass theirs), the choice of value checks and
    ``repr``. A subclass implements :meth:`compute` (the math stays in a
    plain function it calls) and lists its own attributes in
    ``_repr_keys``.

    Bad input, the same for every loss: an ignored entry contributes
    nothing, not even a NaN or inf logit, probability or weight there (the
    input preparation in :mod:`~mmseg_ext.models.losses.utils` replaces
    them by 0 before any arithmetic, so the gradient there is exactly 0).
    Labels must be integers (long class indices, uint8 ``{0, 1}`` maps);
    a non-ignored label outside its range (``[0, C)`` or ``{0, 1}``) or a
    negative / non-finite per-pixel ``weight`` raises
    :class:`~mmseg_ext.models.losses.utils.LossInputError`, naming the value
    and the range: on CPU always, on an accelerator at the loss's first
    forward; afterwards a device-side assertion checks it without a host
    sync (``$MMSEG_EXT_LOSS_CHECKS``, see
    :func:`~mmseg_ext.models.losses.utils.resolve_check`).

    Per-class tensors (``class_weight``, ``alpha``, ``pos_weight``) are built
    once per value and device and cached: building one from a list at every
    forward is a blocking host-to-device copy on CUDA.

    Args:
        class_weight (list[float] | str, optional): Weight of each class, or
            the path of a ``.npy``/``.pkl`` file holding them. Also settable
            after construction (``loss.class_weight = [...]``). Defaults to
            None.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int | None): Target value to ignore when the forward
            call passes none. Defaults to 255.
        loss_name (str): Key of the loss in mmseg's loss dict; must start
            with ``'loss_'``. Defaults to 'loss'.

    Returns:
        Tensor: The forward returns ``loss_weight * compute(...)``.

    Raises:
        ValueError: On an invalid ``reduction``, ``loss_weight``,
            ``ignore_index``, ``class_weight`` or ``loss_name``.
        LossInputError: (a ``ValueError``) at forward: shapes that do not
            fit, labels outside their range, negative or non-finite
            ``weight``.
        LabelDtypeError: (a ``TypeError`` and a ``LossInputError``) at
            forward: floating labels (cast them; resize labels with
            ``'nearest'``).

    Examples:
        >>> from mmseg.registry import MODELS
        >>> @MODELS.register_module()
        ... class MyFocalLoss(BaseSegLoss):
        ...     _repr_keys = ('gamma', )
        ...
        ...     def __init__(self, gamma=2.0, loss_name='loss_my_focal',
        ...                  **kwargs):
        ...         super().__init__(loss_name=loss_name, **kwargs)
        ...         self.gamma = gamma
        ...
        ...     def compute(self, seg_logits, seg_label, args):
        ...         return softmax_focal_loss(seg_logits, seg_label,
        ...                                   gamma=self.gamma,
        ...                                   **args._asdict())
    """

    #: Attributes of the subclass shown first in ``repr``.
    _repr_keys: Tuple[str, ...] = ()

    def __init__(self,
                 class_weight: ClassWeight = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss') -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        if isinstance(loss_weight, bool) or not isinstance(
                loss_weight, Number) or not math.isfinite(loss_weight):
            raise ValueError('`loss_weight` should be a finite number, '
                             f'but got {loss_weight!r}')
        self.loss_weight = float(loss_weight)
        if ignore_index is not None and (isinstance(ignore_index, bool)
                                         or not isinstance(ignore_index, int)):
            raise ValueError('`ignore_index` should be an int or None, '
                             f'but got {ignore_index!r}')
        self.ignore_index = ignore_index
        self._tensor_cache: Dict[tuple, torch.Tensor] = {}
        self._checked_once = False
        self.class_weight = class_weight
        self._loss_name = check_loss_name(loss_name)

    @property
    def class_weight(self) -> Optional[List[float]]:
        """list[float] | None: Per-class weights, read at every forward."""
        return self._class_weight

    @class_weight.setter
    def class_weight(self, value: ClassWeight) -> None:
        self._class_weight = normalize_class_weight(value)

    @property
    def loss_name(self) -> str:
        """str: Key of this loss in the loss dict (starts with ``loss_``)."""
        return self._loss_name

    def channel_tensor(
            self,
            values: Optional[Sequence[float]],
            num_channels: int,
            device: torch.device,
            name: str = 'class_weight',
            hint: str = 'set one weight per channel of the logits'
    ) -> Optional[torch.Tensor]:
        """``values`` as a cached float32 ``(C, )`` tensor on ``device``.

        Raises:
            ValueError: If ``values`` has not ``num_channels`` entries.
        """
        if values is None:
            return None
        if len(values) != num_channels:
            raise ValueError(f'`{name}` should have C={num_channels} '
                             f'entries, but got {len(values)}: {hint}')
        key = (name, tuple(values), str(device))
        cached = self._tensor_cache.get(key)
        if cached is None:
            cached = class_weight_tensor(values, num_channels, device, hint,
                                         name)
            if len(self._tensor_cache) >= 16:
                self._tensor_cache.clear()
            self._tensor_cache[key] = cached
        return cached

    def class_weight_channels(
            self, seg_logits: torch.Tensor) -> Tuple[int, str]:
        """Expected length of ``class_weight`` and how to fix a wrong one."""
        return seg_logits.shape[1], 'set one weight per channel of the logits'

    def forward(self,
                seg_logits: torch.Tensor,
                seg_label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                ignore_index: Optional[int] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """mmseg's loss call; see the subclass docstring.

        Args:
            seg_logits (Tensor): ``(N, C, H, W)`` logits.
            seg_label (Tensor): Labels, in the layout of the subclass.
            weight (Tensor, optional): Per-pixel weights ``>= 0``.
            ignore_index (int, optional): Overrides ``self.ignore_index``.
            avg_factor (float, optional): Divisor of a ``'mean'`` (losses
                that average entries; the Dice losses ignore it).
            reduction_override (str, optional): Overrides
                ``self.reduction``.

        Returns:
            Tensor: float32 loss times ``loss_weight``.
        """
        if ignore_index is None:
            ignore_index = self.ignore_index
        reduction = (self.reduction if reduction_override is None else
                     check_reduction(reduction_override))
        check_logits(seg_logits)
        num, hint = self.class_weight_channels(seg_logits)
        class_weight = self.channel_tensor(self.class_weight, num,
                                           seg_logits.device, hint=hint)
        check = resolve_check(seg_logits.device, self._checked_once)
        loss = self.compute(
            seg_logits, seg_label,
            LossArgs(class_weight, weight, ignore_index, reduction,
                     avg_factor, check))
        if check == 'sync':
            self._checked_once = True
        return self.loss_weight * loss

    def compute(self, seg_logits: torch.Tensor, seg_label: torch.Tensor,
                args: LossArgs) -> torch.Tensor:
        """The loss before ``loss_weight``.

        Args:
            seg_logits (Tensor): ``(N, C, H, W)`` float logits.
            seg_label (Tensor): Labels as passed to the forward.
            args (LossArgs): The resolved forward arguments.

        Returns:
            Tensor: The loss.
        """
        raise NotImplementedError

    def extra_repr(self) -> str:
        """Extra repr: the subclass's ``_repr_keys``, then the shared ones."""
        own = ''.join(f'{key}={getattr(self, key)!r}, '
                      for key in self._repr_keys)
        return (f'{own}loss_name={self.loss_name!r}, loss_weight='
                f'{self.loss_weight}, reduction={self.reduction!r}, '
                f'ignore_index={self.ignore_index}, '
                f'class_weight={self.class_weight}')
