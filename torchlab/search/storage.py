"""Where a study lives: a journal file in the study folder by default, or any Optuna storage URL.

    open_storage("runs/study/study.journal")        # JournalStorage, a file (one machine, or a shared disk)
    open_storage("sqlite:///study.db")              # RDBStorage: sqlite, postgresql://..., mysql://...

Also the bookkeeping that makes several processes (on one machine or many) share one study safely:
which trials count, and which RUNNING trials belong to a process that is gone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from torchlab.errors import UsageError

JOURNAL = "study.journal"  # the default storage's file in the study folder
OPTUNA_HINT = "torchlab tune needs Optuna: pip install 'torchlab[tune]' (or pip install optuna)"


def require_optuna() -> Any:
    """The optuna module, or a one-line UsageError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise UsageError(OPTUNA_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the library does not print; the CLI does
    return optuna


def storage_spec(storage: str | os.PathLike | None, out: Path) -> str:
    """The storage as one string each worker can open: a URL, or the path of a journal file."""
    if storage is None:
        return str(out / JOURNAL)
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


def open_storage(spec: str) -> Any:
    """An Optuna storage for `spec` (see `storage_spec`)."""
    optuna = require_optuna()
    if "://" in spec:
        try:
            return optuna.storages.RDBStorage(spec)
        except Exception as exc:  # a bad URL, a missing driver, a server that does not answer
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            raise UsageError(f"--storage {spec}: cannot open it ({type(exc).__name__}: {first})") from None
    from optuna.storages.journal import JournalFileBackend

    Path(spec).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(spec))


def this_process() -> dict[str, Any]:
    """What a trial records about the process running it (to tell later whether that process is alive)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def fail_orphans(study: Any) -> list[int]:
    """Mark FAILED the RUNNING trials of this host whose process is gone (killed); return their numbers."""
    import optuna

    host, gone = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") == host and isinstance(attrs.get("pid"), int) and not process_alive(attrs["pid"]):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            gone.append(trial.number)
    return gone


def counted(study: Any, before: int | None = None) -> int:
    """Trials that count toward --trials: COMPLETE, PRUNED and RUNNING (numbered below `before` if given)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if before is None or t.number < before)
