"""Files that appear whole: written to a temporary name beside the target, then renamed over it.

``tempfile.mkstemp`` creates files readable by their owner only (0600); ``publish`` gives the file
the permissions a plain ``open(path, "w")`` would (0666 less the umask) before the rename, so
results, previews and checkpoints are as shareable as any other file the user writes.

``temp_file`` names a temporary file after its writer (host, pid) so that one left by a kill can be
told from one being written: ``remove_own`` (at exit) and ``remove_stale`` (on the next run).

Every file the engine writes whole goes through ``atomic_path``::

    with atomic_path(path, ".hmp-result-", ".npz") as tmp:   # a temporary name beside ``path``
        np.savez_compressed(tmp, ...)                          # published to ``path`` on success,
                                                               # removed on any exception
"""

import atexit
import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator


def default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, prefix: str, suffix: str, *, clean_stale: bool = True) -> Iterator[str]:
    """Yield a temporary file name beside ``path`` (``temp_file``, already created, empty); when the
    block ends normally it is published to ``path``, on any exception (KeyboardInterrupt included)
    it is removed. ``clean_stale``: first remove the temporary files (same prefix and suffix) that
    killed writers left in that folder (``remove_stale``)."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    if clean_stale:
        remove_stale(directory, prefix, suffix)
    fd, tmp = temp_file(directory, prefix, suffix)
    try:
        os.close(fd)
        yield tmp
        publish(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def write_text(path: str | os.PathLike, text: str, prefix: str = ".hmp-text-") -> None:
    """Write ``text`` (utf-8) to ``path`` through ``atomic_path``: a reader sees the old file or the new."""
    suffix = os.path.splitext(os.fspath(path))[1] or ".txt"
    with atomic_path(path, prefix, suffix) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)


def save_npz(path: str | os.PathLike, arrays: dict, prefix: str = ".hmp-npz-") -> None:
    """``np.savez`` of ``arrays`` to ``path`` (.npz) through ``atomic_path`` (numpy imported here only)."""
    import numpy as np

    with atomic_path(path, prefix, ".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def publish(tmp: str, path: str | os.PathLike) -> None:
    """Give ``tmp`` ordinary file permissions and move it to ``path`` (atomic on one filesystem)."""
    os.chmod(tmp, default_mode())
    os.replace(tmp, path)
    _OWN.discard(os.fspath(tmp))


# ------------------------------------------------------------------ temporary files left by a kill
# A temporary file's name says who writes it: ``{prefix}{host}.{pid}.{random}{suffix}``. The engine
# removes its own on exit (``remove_own``, also from a SIGTERM handler) and, on the next run, those
# of writers on this host that no longer run (``remove_stale``): a SIGKILL leaves nothing for long.

_OWN = set()  # paths of the temporary files this process has open
STALE_AGE_S = 24 * 3600  # a temporary file of another host (or an older naming) this old is abandoned


def _host():
    return "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40] or "host"


def temp_file(directory: str | os.PathLike, prefix: str, suffix: str) -> tuple[int, str]:
    """``tempfile.mkstemp`` in ``directory`` with the writer's host and pid in the name -> (fd, path)."""
    fd, path = tempfile.mkstemp(prefix=f"{prefix}{_host()}.{os.getpid()}.", suffix=suffix, dir=directory)
    _OWN.add(path)
    return fd, path


def discard(path: str) -> None:
    """Remove a temporary file (if still there) and forget it."""
    _OWN.discard(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_own() -> None:
    """Remove every temporary file this process still has (at exit, on SIGTERM, before ``os._exit``)."""
    for path in list(_OWN):
        try:
            discard(path)
        except OSError:
            pass


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def remove_stale(directory: str | os.PathLike, prefix: str, suffix: str, max_age_s: float = STALE_AGE_S) -> list[str]:
    """Remove temporary files (``prefix``...``suffix``) in ``directory`` whose writer on this host no longer
    runs, and any older than ``max_age_s``. Returns the names removed; never raises."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    host, now = _host(), time.time()
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(suffix)) or entry.path in _OWN:
            continue
        parts = name[len(prefix):].split(".")
        try:
            mine = len(parts) >= 3 and parts[0] == host and parts[1].isdigit()
            dead = mine and not process_alive(int(parts[1]))
            if dead or now - entry.stat(follow_symlinks=False).st_mtime > max_age_s:
                os.unlink(entry.path)
                removed.append(name)
        except OSError:
            pass
    return removed


atexit.register(remove_own)
