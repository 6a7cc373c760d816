"""The one atomic writer: every artifact reaches its final name complete, or not at all.

Each write goes to a hidden temp file in the same folder, named by its writer
(``.<name>.<host>-<pid>.tmp``), is flushed and fsynced, renamed over the final
name, and the folder is fsynced so that the rename itself survives a crash of the
machine. A file under its final name is therefore always complete; a killed writer
leaves at most its temp file, which nothing reads and :func:`remove_stale_temps`
deletes once that writer is gone. Two processes writing the same artifact each use
their own temp file, so neither can rename the other's half-written one.

What is built once and then reused (a cache folder, the compiled-code cache) is built
under :func:`locked`: an exclusive lock on a file next to it, so that of two processes
that find it missing, one builds it while the other waits and then reuses it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

__all__ = ["temp_path", "writing", "write_with", "write_bytes", "write_text", "write_json", "write_yaml",
           "save_npy", "write_csv", "write_rows", "remove_stale_temps", "locked", "lock_beside"]

log = logging.getLogger(__name__)

_OTHER_HOST = re.compile(r"\.[^/]+-\d+\.tmp$")


def temp_path(path: str | os.PathLike) -> Path:
    """The temp file a write of ``path`` goes through: hidden, same folder, named by host and pid."""
    path = Path(path)
    return path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - a filesystem that cannot sync a folder
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temp path to write ``path`` through; on success it is fsynced and renamed.

    On any exception the temp file is deleted and the final name is left as it was.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Give the complete file ``tmp`` its final name ``path``: fsync it, rename it over ``path``,
    fsync the folder. For writers that need a temp name of their own (a download's ``.part``,
    kept between runs to resume); the others use :func:`writing`."""
    tmp, path = Path(tmp), Path(path)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def write_with(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Atomically create ``path`` by calling ``write(temp_path)`` (e.g. ``torch.save``)."""
    with writing(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text, with ``\\n`` line ends whatever the platform."""
    return write_with(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Indented JSON; NaN and infinity are refused (they are not JSON)."""
    return write_text(path, json.dumps(obj, indent=2, default=str, allow_nan=False))


def write_yaml(path: str | os.PathLike, obj: Mapping) -> Path:
    import yaml

    return write_text(path, yaml.safe_dump(dict(obj), sort_keys=False, allow_unicode=True))


def save_npy(path: str | os.PathLike, array) -> Path:
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return write_with(path, write)


def write_csv(path: str | os.PathLike, df) -> Path:
    """A DataFrame as UTF-8 CSV without its index.

    Text that UTF-8 cannot encode (file names with undecodable bytes, which Python holds
    as lone surrogates) is written with those bytes as ``\\xNN`` escapes, so the file is
    always valid UTF-8.
    """
    from ._pandas import pd

    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) and not _utf8_ok(df[c])]
    if bad:
        df = df.copy()
        for c in bad:
            df[c] = df[c].map(utf8_text)
    return write_with(path, lambda tmp: df.to_csv(tmp, index=False))


def write_rows(path: str | os.PathLike, columns, rows) -> Path:
    """``rows`` (dicts) as a UTF-8 CSV with ``columns``, as :func:`write_csv` writes a DataFrame
    of them (floats by ``repr``, NaN and None empty, text through :func:`utf8_text`), without
    importing pandas: for a command that makes no table otherwise (``audioreg extract``)."""
    import csv
    import io

    import numpy as np

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        if isinstance(value, (float, np.floating)):
            return "" if value != value else repr(float(value))
        return utf8_text(str(value))

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell(row.get(c)) for c in columns] for row in rows)
    return write_text(path, buf.getvalue())


def utf8_text(value):
    """``value``, with text that UTF-8 cannot encode escaped (``"bad\\xff name"``)."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that does not stand for a byte
            return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _utf8_ok(col) -> bool:
    try:
        "\n".join(v for v in col if isinstance(v, str)).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def remove_stale_temps(folder: str | os.PathLike, *, names: tuple[str, ...] | None = None) -> int:
    """Delete temp files in ``folder`` whose writer is gone; returns how many.

    A temp file is ``.<name>.<host>-<pid>.tmp``. It is kept while its writer is a live
    process on this host, or when it was written on another host (that writer may still
    run); otherwise (a dead pid, or a name this module never makes) it is deleted.
    ``names`` limits it to temp files of those final names. Temp files are never read:
    this only frees the space.
    """
    mine = re.compile(rf"\.{re.escape(socket.gethostname())}-(?P<pid>\d+)\.tmp$")
    removed = 0
    for p in Path(folder).glob(".*.tmp"):
        if names and not any(p.name.startswith(f".{n}.") for n in names):
            continue
        m = mine.search(p.name)
        if m:
            try:
                os.kill(int(m["pid"]), 0)
                continue  # its writer still runs
            except ProcessLookupError:
                pass
            except OSError:  # exists, owned by someone else
                continue
        elif _OTHER_HOST.search(p.name):
            continue
        p.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def locked(path: str | os.PathLike, *, doing: str = "holding it") -> Iterator[Path]:
    """Hold an exclusive ``flock`` on the file ``path`` (created, with its folder, if missing).

    Released when the block ends or the process dies (a killed holder never leaves a stale
    lock). A process that has to wait logs one info line, ``waiting for another process
    <doing> (lock <path>)``. Put the lock file where removing what it guards does not remove
    it: beside a folder that may be deleted and rebuilt, not inside it. On a shared filesystem
    (NFS) it locks across hosts, as far as that filesystem supports ``flock``. Yields ``path``.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        t0 = time.monotonic()
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process %s (lock %s)", doing, path)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            log.debug("lock %s after %.1f s", path, time.monotonic() - t0)
        try:
            yield path
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def lock_beside(folder: str | os.PathLike, *, doing: str):
    """:func:`locked` on ``<folder>.lock``, beside ``folder``: the lock of a folder that is built
    (and may be deleted and rebuilt) while it is held; a process that waits logs ``waiting for
    another process <doing> <folder>``."""
    folder = Path(folder)
    return locked(folder.with_name(folder.name + ".lock"), doing=f"{doing} {folder}")
