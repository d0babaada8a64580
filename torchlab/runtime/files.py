"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Checkpoints, history.csv, figures, prediction records and generated CSV files all go through
`atomic_write_bytes` (temporary file in the same folder, flush, fsync, rename), so a run killed
mid-write leaves the previous file whole.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, *, also: tuple[str | os.PathLike, ...] = (), durable: bool = True
) -> None:
    """Write bytes to `path` so that readers see the old file or the new one, never half of one.

    The bytes go to a temporary file in the same folder, are flushed (and fsynced when
    `durable`), and the file is renamed over `path`. Each path in `also` (same folder) gets the
    same content first, as a hard link to the same temporary file, so one write and one fsync
    serve several names (best.pt and last.pt after an improving epoch).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    created = [tmp]
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        for other in map(Path, also):
            twin = other.parent / f".{other.name}.{os.path.basename(tmp)}"
            try:
                os.link(tmp, twin)
            except OSError:  # no hard links here: write a second copy
                atomic_write_bytes(other, data, durable=durable)
                continue
            created.append(str(twin))
            os.replace(twin, other)
        os.replace(tmp, path)
    except BaseException:
        for leftover in created:
            if os.path.exists(leftover):
                os.unlink(leftover)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
