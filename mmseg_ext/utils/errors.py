# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The project's error for bad input files and values.

Every reader of an external format (competition RLE, building CSVs, polygon
JSON, packed labels) raises :class:`InputError` or a subclass of it. It is a
``ValueError``, so code that catches ``ValueError`` keeps working, and it
carries where the problem is as attributes, so tools can print one line and
tests can check the fields instead of parsing the message::

    train.csv: line 3, field 'mask_rle': RLE token 0 is not a plain
    positive integer: got '1_0'; expected ASCII digits 0-9 only
"""
from typing import Any, Optional

__all__ = ['InputError', 'short_repr']

_MISSING = object()
# Longest repr of an offending value kept in a message.
MAX_VALUE_CHARS = 60


def short_repr(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters with ``'...'``."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


class InputError(ValueError):
    """Bad input: names the file, the place in it, what came and what was
    expected.

    The message is one line (``repr`` escapes newlines of the value)::

        {path}: {where}: {reason}: got {value!r}; expected {expected}

    with the parts that are None left out.

    Args:
        message (str, optional): The whole message, used as is (the
            constructor of a plain ``ValueError``; also how PyTorch's
            DataLoader re-raises a worker's error). When given, the other
            arguments are only stored as attributes. Defaults to None
            (built from the other arguments).
        path (str, optional): The file. Defaults to None.
        where (str, optional): The place in it: ``"line 3, field
            'mask_rle'"``, ``'annotation 2, field "points"'``, ``'RLE token
            4'``. Defaults to None.
        reason (str, optional): What is wrong, when ``value`` and
            ``expected`` do not say it alone. Defaults to None.
        value: The offending value (shown with ``repr``, shortened).
            Defaults to not shown.
        expected (str, optional): What was expected, and the fix.
            Defaults to None.

    Attributes:
        path, where, reason, value, expected: As given (``value`` is None
            when not given).

    Examples:
        >>> err = InputError(path='a.csv', where="line 3, field 'rle'",
        ...                  value='1_0 2', expected='ASCII digits')
        >>> str(err)
        "a.csv: line 3, field 'rle': got '1_0 2'; expected ASCII digits"
        >>> isinstance(err, ValueError)
        True
    """

    def __init__(self,
                 message: Optional[str] = None,
                 *,
                 path: Optional[str] = None,
                 where: Optional[str] = None,
                 reason: Optional[str] = None,
                 value: Any = _MISSING,
                 expected: Optional[str] = None) -> None:
        self.path = None if path is None else str(path)
        self.where = where
        self.reason = reason
        self.has_value = value is not _MISSING
        self.value = value if self.has_value else None
        self.expected = expected
        self._message = message
        super().__init__(message if message is not None else
                         self._format())

    def _format(self) -> str:
        head = ': '.join(str(x) for x in (self.path, self.where) if x)
        body = self.reason or ''
        if self.has_value:
            got = f'got {short_repr(self.value)}'
            body = f'{body}: {got}' if body else got
        if self.expected:
            exp = f'expected {self.expected}'
            body = f'{body}; {exp}' if body else exp
        if head and body:
            return f'{head}: {body}'
        return head or body

    def located(self,
                path: Optional[str] = None,
                where: Optional[str] = None,
                cls: Optional[type] = None) -> 'InputError':
        """A copy placed in a file: ``path`` set (if not yet) and ``where``
        put in front of the current place.

        Used by the readers of files that hold another format (a CSV cell
        holding an RLE): ``err.located('train.csv', "line 3, field
        'mask_rle'")``. A copy made with an explicit ``message`` keeps the
        message and gets the path prefixed.

        Args:
            path (str, optional): The file. Defaults to None (unchanged).
            where (str, optional): The outer place. Defaults to None.
            cls (type, optional): The class of the copy, a subclass of
                :class:`InputError` (e.g. the reader's own). Defaults to
                None (the class of this error).

        Returns:
            InputError: Of class ``cls`` (or ``InputError`` if the class
            takes other constructor arguments).
        """
        new_where = ', '.join(x for x in (where, self.where) if x) or None
        new_path = self.path if self.path is not None else path
        message = self._message
        if message is not None:
            head = ': '.join(
                str(x) for x in (path if self.path is None else None, where)
                if x)
            message = f'{head}: {message}' if head else message
        kwargs = dict(path=new_path, where=new_where, reason=self.reason,
                      expected=self.expected)
        if self.has_value:
            kwargs['value'] = self.value
        try:
            return (cls or type(self))(message, **kwargs)
        except TypeError:
            return InputError(message, **kwargs)

    def __reduce__(self):
        # Keep the fields through pickling (multiprocessing workers).
        kwargs = dict(path=self.path, where=self.where, reason=self.reason,
                      expected=self.expected)
        if self.has_value:
            kwargs['value'] = self.value
        return _rebuild, (type(self), self._message, kwargs)


def _rebuild(cls, message, kwargs):
    return cls(message, **kwargs)
