"""What a run checks around its training, beside `torchlab.train`: the resume guard, a NaN in a config, a
lost peer under torchrun, and the folder's config.toml put back when nothing was trained."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torchlab.config import TrainConfig, as_dict, flag_name, resume_conflicts
from torchlab.errors import CheckpointError, LostPeer, UsageError
from torchlab.runtime import distributed
from torchlab.runtime.files import atomic_write_bytes
from torchlab.tasks import get_task


def file_state(path: Path) -> tuple[int, int] | None:
    """(size, modification time) of a file, None when there is none: whether a run wrote it since."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def restore_file(path: Path, content: bytes | None) -> None:
    """Put `content` back at `path` (None: remove the file)."""
    if content is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_bytes(path, content)


def lost_peer_error(out: Path, exc: BaseException) -> LostPeer:
    """What a rank says when another process of its torchrun run is gone: what failed, what is saved, what to do."""
    from torchlab.engine.checkpoint import read_checkpoint

    last = out / "last.pt"
    try:
        saved = f"{last} holds epoch {read_checkpoint(last)['epoch']}"
    except (CheckpointError, KeyError, OSError):
        saved = f"no {last} was written yet"
    return LostPeer(
        f"lost another process of this torchrun run ({distributed.lost_peer_reason(exc)}): a worker or "
        f"node died or stopped answering; {saved}: run the same command again with --resume auto "
        "(torchrun --max-restarts restarts lost workers by itself)"
    )


def non_finite_field(cfg: TrainConfig) -> str | None:
    """The first config field whose value is a NaN or infinite float, or None."""
    odd = [name for name, value in as_dict(cfg).items() if isinstance(value, float) and not math.isfinite(value)]
    return odd[0] if odd else None


def check_resume(path: Path, cfg: TrainConfig, task: str | None = None) -> None:
    """Refuse to resume another task's checkpoint (`task`: this run's), or with config fields that change the
    data split, the model or the schedule."""
    from torchlab.engine.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(path)
    if task is not None and _canonical_task(checkpoint["task"]) != _canonical_task(task):
        raise UsageError(
            f"--resume: {path} is a checkpoint of task {checkpoint['task']}, not {task}; resume it with "
            f"torchlab train {checkpoint['task']} --resume, or train {task} into another --out"
        )
    saved = checkpoint.get("config")
    conflicts = resume_conflicts(saved, cfg) if saved else []  # no config: written before configs were recorded
    if conflicts:
        name, old, new = conflicts[0]
        raise UsageError(
            f"--resume with {flag_name(name)} {new!r} but {path} was trained with {old!r}; "
            f"resume with the same {flag_name(name)} (only epochs, batch size, accumulation, early stopping, "
            "the time budget and speed fields may change) or start a new run with another --out"
        )
    # A run saved before configs had a `model` field (task keypoint-fcn, ...): its model is the checkpoint's.
    held, model = (checkpoint.get("model") or {}).get("name"), getattr(cfg, "model", None)
    if "model" not in (saved or {}) and held is not None and model is not None and held != model:
        raise UsageError(
            f"--resume with --model {model} but {path} holds {held}; resume with --model {held} "
            "or start a new run with another --out"
        )


def _canonical_task(name: Any) -> Any:
    """The registered name of task `name` (an old name is an alias), or `name` itself when unknown."""
    try:
        return get_task(name).name
    except (KeyError, TypeError):
        return name
