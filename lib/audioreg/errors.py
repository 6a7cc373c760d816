"""Errors every layer may raise and the runner understands, and how a failure that does not stop a batch is listed."""

from __future__ import annotations


class NotEnoughData(ValueError):
    """The data cannot support this stage: too few tracks, labels or parts to train or score.

    Not a bug and not bad input: small or sparse data still ends well. A notebook that raises
    it is reported by ``audioreg run`` as *skipped*, with this message, and the run goes on
    (a later stage that needs what was skipped raises it again, with its own reason).
    """


def one_line(exc: BaseException) -> str:
    """``"<Type>: <first line of its message>"``: how a failure that does not stop a batch is
    listed beside its file or row."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}"
