"""Errors every layer may raise and the runner understands, and how a failure that does not stop a batch is listed."""

from __future__ import annotations

import re


class NotEnoughData(ValueError):
    """The data cannot support this stage: too few tracks, labels or parts to train or score.

    Not a bug and not bad input: small or sparse data still ends well. A notebook that raises
    it is reported by ``audioreg run`` as *skipped*, with this message, and the run goes on
    (a later stage that needs what was skipped raises it again, with its own reason).
    """


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read back (truncated, corrupt, or not ours).

    Raised by :mod:`audioreg.models.train`; defined here so that a caller (the command line)
    can catch it without importing torch."""


def one_line(exc: BaseException) -> str:
    """``"<Type>: <first line of its message>"``: how a failure that does not stop a batch is
    listed beside its file or row."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}"


#: errno values that mean the output's filesystem is full (or the user's quota is spent).
_NO_SPACE_ERRNOS = (28, 122)  # ENOSPC, EDQUOT
#: How a full filesystem reads in an error's text: the two errnos' messages, and NumPy's short
#: write (raised without an errno when ``ndarray.tofile`` fills the disk).
NO_SPACE_TEXT = re.compile(r"No space left on device|Disk quota exceeded|\d+ requested and \d+ written")


def is_out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a write that found no space left.

    Besides ``ENOSPC``/``EDQUOT``, NumPy's short write (``"<n> requested and <m> written"``,
    raised without an errno when ``ndarray.tofile`` fills the disk) counts.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno in _NO_SPACE_ERRNOS or NO_SPACE_TEXT.search(str(exc))):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def out_of_space(folder) -> str:
    """The one message for a full filesystem: ``"no space left on <folder>"``, with its free bytes."""
    import shutil

    try:
        free = f" ({shutil.disk_usage(folder).free / 2**20:.1f} MiB free)"
    except OSError:
        free = ""
    return f"no space left on {folder}{free}"
