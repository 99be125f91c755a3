"""errors.py - duet's exceptions: one class per duet_status of duet.h, all
subclasses of duet.Error, carrying the C library's one-line message."""
import builtins

from . import _lib


class Error(Exception):
    """A duet call failed. `code` is the duet_status, str() the message."""

    code = _lib.ERR_INTERNAL

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code


class ArgumentError(Error, ValueError):
    """A bad argument or option value (DUET_ERR_ARG)."""
    code = _lib.ERR_ARG


class IOError(Error, builtins.OSError):  # noqa: A001 - duet.IOError, as the API names it
    """A file could not be read or written (DUET_ERR_IO)."""
    code = _lib.ERR_IO


class FormatError(Error):
    """A model, adapter, tokenizer or session file is malformed (DUET_ERR_FORMAT)."""
    code = _lib.ERR_FORMAT


class NotFoundError(Error, LookupError):
    """No adapter of that name, no tokenizer or chat template (DUET_ERR_NOT_FOUND)."""
    code = _lib.ERR_NOT_FOUND


class ContextFullError(Error):
    """The tokens do not fit the session's context (DUET_ERR_CONTEXT_FULL)."""
    code = _lib.ERR_CONTEXT_FULL


class BudgetError(Error):
    """The KV cache would exceed the model's KV budget (DUET_ERR_BUDGET)."""
    code = _lib.ERR_BUDGET


class OutOfMemoryError(Error, MemoryError):
    """Memory ran out (DUET_ERR_NOMEM)."""
    code = _lib.ERR_NOMEM


class UTF8Error(Error, ValueError):
    """Text that is not valid UTF-8 (DUET_ERR_UTF8)."""
    code = _lib.ERR_UTF8


class MismatchError(Error):
    """A session file made by another model or adapter (DUET_ERR_MISMATCH)."""
    code = _lib.ERR_MISMATCH


class StateError(Error):
    """The call does not fit the handle's state (DUET_ERR_STATE)."""
    code = _lib.ERR_STATE


class InternalError(Error):
    """A bug in duet (DUET_ERR_INTERNAL)."""
    code = _lib.ERR_INTERNAL


_BY_CODE = {c.code: c for c in (ArgumentError, IOError, FormatError, NotFoundError, ContextFullError, BudgetError,
                                OutOfMemoryError, UTF8Error, MismatchError, StateError, InternalError)}


def error_for(code, message):
    """The exception instance for a negative duet_status and its message."""
    cls = _BY_CODE.get(code, Error)
    return cls(message or "duet error %d" % code, code)
