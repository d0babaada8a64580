"""Checkpoints: self-describing dicts of tensors and primitives, written atomically with a SHA-256 digest of
their contents, read back only with `torch.load(weights_only=True)` so a file can never run code, and verified
against that digest so a damaged file is never used."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import stat
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.errors import CheckpointError
from torchlab.reporting.messages import shorten
from torchlab.runtime.files import atomic_write_bytes, atomic_write_text  # noqa: F401  (importable from here too)
from torchlab.version import __version__

FORMAT = "torchlab-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "task", "model", "state_dict")


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike, *more_paths: str | os.PathLike) -> Path:
    """Serialize a checkpoint dict (see `make_checkpoint`) with the digest of its tensors once and write it
    atomically to `path`; each of `more_paths` (same folder) is updated first, to the same bytes."""
    buffer = io.BytesIO()
    torch.save({**checkpoint, DIGEST_KEY: tensor_digest(checkpoint)}, buffer)
    atomic_write_bytes(path, buffer.getvalue(), also=more_paths)
    return Path(path)


DIGEST_KEY = "digest"
# The parts of a checkpoint the digest covers, as a message names them; "other" is everything else: the metadata
# (task, model arguments, normalization, metrics, ...) and the other tensors (RNG states, weight averages, ...).
DIGEST_PARTS = {"state_dict": "weights", "optimizer": "optimizer state", "other": "metadata and other state"}


def tensor_digest(checkpoint: Mapping[str, Any]) -> dict[str, str]:
    """SHA-256 of a checkpoint's contents, one per part of DIGEST_PARTS: each tensor's name, dtype, shape and
    bytes, and each plain value's name and repr, in order. torch.load never checks the file's zip CRCs, so
    this is what tells a damaged file from a good one."""
    hashes = {part: hashlib.sha256() for part in DIGEST_PARTS}
    for key, value in checkpoint.items():
        if key != DIGEST_KEY:
            _hash_into(hashes[key if key in hashes else "other"], key, value)
    return {"algorithm": "sha256", **{part: h.hexdigest() for part, h in hashes.items()}}


def _hash_into(digest: Any, name: str, value: Any) -> None:
    """Feed `value` (tensors and plain values in dicts, lists and tuples) into `digest`, each leaf under its name."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        if tensor.layout == torch.strided:
            digest.update(tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"{name}{{{len(value)};".encode())
        for key, item in value.items():
            _hash_into(digest, f"{name}.{key!r}", item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{name}[{len(value)};".encode())
        for index, item in enumerate(value):
            _hash_into(digest, f"{name}.{index}", item)
    else:  # what a weights_only load returns: numbers, strings, bytes, None, dtypes
        digest.update(f"{name}={type(value).__name__}:{value!r};".encode())


def verify_digest(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> None:
    """A CheckpointError "<path> is damaged: ..." when the contents no longer match the digest written with them;
    a checkpoint written before digests (no digest) passes."""
    saved = checkpoint.get(DIGEST_KEY)
    if saved is None:
        return
    if not isinstance(saved, dict) or saved.get("algorithm") != "sha256":
        raise CheckpointError(
            f"{path} is damaged: its digest record is unreadable; use another checkpoint "
            "(best.pt or last.pt of the run) or retrain"
        )
    now = tensor_digest(checkpoint)
    bad = [part for part in DIGEST_PARTS if saved.get(part) != now[part]]
    if bad:
        damaged = " and ".join(DIGEST_PARTS[p] for p in bad)
        raise CheckpointError(
            f"{path} is damaged: the SHA-256 digest of its {damaged} "
            "does not match the one written with it (bytes changed on disk or in a copy); use "
            "another checkpoint (best.pt or last.pt of the run) or retrain"
        )


def add_metrics(path: str | os.PathLike, metrics: dict[str, Any]) -> None:
    """Merge `metrics` into an existing checkpoint's metadata (e.g. the test accuracy of best.pt),
    so `torchlab.load` reports them; a missing file is left alone."""
    path = Path(path)
    if path.exists():
        checkpoint = read_checkpoint(path)
        checkpoint["metrics"] = {**checkpoint.get("metrics", {}), **plain(metrics)}
        save_checkpoint(checkpoint, path)


def make_checkpoint(
    *,
    task: str,
    model_name: str,
    model: nn.Module,
    model_kwargs: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """The checkpoint dict every torchlab file holds; `extra` adds epoch, history, normalization, ..."""
    state_dict = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "model": {"name": model_name, "class": type(_unwrap(model)).__name__, "kwargs": dict(model_kwargs)},
        "state_dict": state_dict,
        "versions": {"torch": str(torch.__version__), "torchlab": __version__},
    }
    checkpoint.update({key: plain(value) for key, value in extra.items()})
    return checkpoint


@dataclass(frozen=True)
class CheckpointMeta:
    """What a Trainer's checkpoints say about their run, besides the training state.

    task: what `torchlab.open_checkpoint` looks up ("custom" for a Trainer used on its own);
    model_name, model_kwargs: how `build_model` rebuilds the model (model_name None: the model's class name);
    recipe, seed, config: the recipe, seed and config fields of a `torchlab train` run (None: left out of the file);
    extra: any other plain metadata the task's evaluate and predict read (normalization, classes, data, ...).
    """

    task: str = "custom"
    model_name: str | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    seed: int | None = None
    config: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, meta: CheckpointMeta | Mapping[str, Any]) -> CheckpointMeta:
        """`meta` itself, or the record of a plain dict with the same keys (the other keys go to `extra`)."""
        if isinstance(meta, CheckpointMeta):
            return meta
        extra = dict(meta)
        named = {
            key: extra.pop(key)
            for key in ("task", "model_name", "model_kwargs", "recipe", "seed", "config")
            if key in extra
        }
        return cls(**named, extra=extra)

    def checkpoint(self, model: nn.Module, **state: Any) -> dict[str, Any]:
        """The checkpoint dict of `model` with this metadata and the training `state` (epoch, optimizer, ...)."""
        settings = {"recipe": self.recipe, "seed": self.seed, "config": self.config}
        return make_checkpoint(
            task=self.task,
            model_name=self.model_name or type(_unwrap(model)).__name__,
            model=model,
            model_kwargs=self.model_kwargs,
            **state,
            **{k: v for k, v in settings.items() if v is not None},
            **self.extra,
        )


def plain(value: Any) -> Any:
    """Recursively turn NumPy scalars/arrays, paths and tuples into types a weights_only load accepts."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k) if not isinstance(k, (int, str)) else k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, (os.PathLike, torch.device)):
        return str(value)
    raise TypeError(f"checkpoint metadata cannot hold {type(value).__name__}; use plain numbers, strings, lists, dicts")


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint dict. Never unpickles arbitrary objects."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; train first (torchlab train TASK) or check the path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass a checkpoint file such as {path / 'best.pt'}")
    if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would block the read forever
        raise CheckpointError(f"{path} is not a regular file (a pipe, socket or device); pass a checkpoint file")
    try:
        with warnings.catch_warnings():  # hostile bytes can trigger parser warnings; the error below says it all
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"unsupported (?:global:? )?GLOBAL ([\w.]+)", str(exc), re.IGNORECASE)
        target = found.group(1) if found else _pickled_global(path)
        if target:  # a reference to a Python callable: unpickling it is how a file runs code
            raise CheckpointError(
                f"{path} was refused: it refers to the Python object {target}, which a safe (weights_only) "
                "load does not unpickle because that could run code; torchlab only opens checkpoints it wrote"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable checkpoint (not a torch file, or a pickle a safe load cannot read); "
            "retrain or point at best.pt/last.pt of a finished run"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or not a torch file: {type(exc).__name__}); "
            "retrain or point at best.pt/last.pt of a finished run"
        ) from None
    except Exception as exc:  # any other parser failure on hostile bytes
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}); "
            "retrain or point at best.pt/last.pt of a finished run"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a torchlab checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is an incomplete torchlab checkpoint (missing {', '.join(missing)})")
    version = checkpoint["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(
            f"{path} has a format_version that is not a whole number ({shorten(repr(version), 40)}); "
            "retrain or point at best.pt/last.pt of a finished run"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer torchlab (format {checkpoint['format_version']}); upgrade torchlab"
        )
    verify_digest(checkpoint, path)
    return checkpoint


def _pickled_global(path: Path, limit: int = 1 << 20) -> str | None:
    """The first Python object a plain pickle file refers to ('posix.system'), or None when its first
    `limit` bytes are not such a pickle. Reads the opcodes with pickletools; nothing is unpickled."""
    import pickletools

    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(io.BytesIO(f.read(limit))):
                if op.name in ("GLOBAL", "INST"):
                    return str(arg).replace(" ", ".")
                if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    return f"{strings[-2]}.{strings[-1]}"
                if isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # not a pickle, or cut off at `limit`: nothing to name
        return None
    return None


def check_finite_weights(state_dict: dict[str, Any], path: str | os.PathLike) -> None:
    """A CheckpointError naming the first tensor that holds NaN or infinite values."""
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{path} holds non-finite weights ({bad:,} NaN or infinite values in {name}); "
                "its predictions would be NaN: use an earlier checkpoint or retrain"
            )


def sound_checkpoint(path: str | os.PathLike | None) -> Path | None:
    """`path` when it is a checkpoint that reads, matches its digest and holds finite weights; else None."""
    if path is None or not Path(path).exists():
        return None
    try:
        check_finite_weights(read_checkpoint(path)["state_dict"], path)
    except CheckpointError:
        return None
    return Path(path)


def load_state_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load weights, turning shape/key mismatches into a CheckpointError that names them."""
    try:
        _unwrap(model).load_state_dict(state_dict)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(
            f"{source} does not fit model {type(_unwrap(model)).__name__}: {shorten(detail, 200)}; "
            "its weights were saved for other model settings: retrain, or use the checkpoint unchanged"
        ) from None


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, and return (model in eval mode, metadata).

    The metadata is the checkpoint dict without the heavy optimizer/RNG states and without
    the state_dict: task, model name and kwargs, normalization, metrics, history, ...
    """
    from torchlab.models import build_model
    from torchlab.runtime.device import pick_device

    device = pick_device(device)
    checkpoint = read_checkpoint(path, map_location="cpu")
    spec = checkpoint["model"]
    try:
        with torch.device("meta"):  # sizes only, no memory: is the model within the budget?
            shape = build_model(spec["name"], **spec.get("kwargs", {}))
        check_model_memory(shape, path)
        model = build_model(spec["name"], **spec.get("kwargs", {}))
    except KeyError:
        raise CheckpointError(f"{path} names an unknown model {spec.get('name')!r}; is torchlab up to date?") from None
    except TypeError as exc:
        raise CheckpointError(
            f"{path} holds model arguments that {spec.get('name')} does not take ({shorten(str(exc), 200)})"
        ) from None  # one line: an argument name may hold a newline
    except ValueError as exc:
        raise CheckpointError(
            f"{path} holds impossible model arguments ({shorten(str(exc), 200)}); "
            "the file is damaged or was not written by torchlab: retrain"
        ) from None
    check_finite_weights(checkpoint["state_dict"], path)
    load_state_into(model, checkpoint["state_dict"], source=str(path))
    model.to(device).eval()
    heavy = {"state_dict", "optimizer", "scheduler", "rng", "early_stopping", "best_state_dict", "interrupted"}
    meta = {k: v for k, v in checkpoint.items() if k not in heavy}
    meta["path"] = str(path)
    return model, meta


def check_model_memory(shape: nn.Module, path: str | os.PathLike) -> None:
    """A CheckpointError when the model a checkpoint describes (`shape`, built on the meta device) would not fit
    the CPU's memory budget: its arguments, not its weights, set the sizes that are allocated first."""
    from torchlab.runtime.guards import memory_budget

    needed = sum(t.numel() * t.element_size() for t in (*shape.parameters(), *shape.buffers()))
    budget = memory_budget("cpu")
    if budget is not None and needed > budget:
        raise CheckpointError(
            f"{path} describes a model of {needed / 1e9:.1f} GB, over the memory budget of "
            f"{budget / 1e9:.1f} GB; its model arguments are damaged or it needs a bigger machine"
        )


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
