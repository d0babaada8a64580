"""Wording of one-line error messages: details cut at a word, operating-system errors said plainly."""

from __future__ import annotations

import errno


def shorten(text: str, limit: int = 200) -> str:
    """`text` on one line, at most `limit` characters, cut after a whole word (or inside one token longer
    than half the limit) and marked with '...'."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    if cut.rfind(" ") > limit // 2:  # a word boundary not too far back; else one long token is cut
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "..."


_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or write to another disk (--out)",
    errno.EDQUOT: "the disk quota is used up; free some space or write to another disk (--out)",
    errno.EROFS: "that file system is read-only; write to another folder (--out)",
}


def os_error_message(exc: OSError) -> str:
    """'No space left on device: runs/x/best.pt; the disk is full; ...' for a failed read or write."""
    where = f": {exc.filename}" if exc.filename else ""
    advice = "check the path and its permissions"
    if exc.errno is not None:
        advice = _ADVICE.get(exc.errno, advice)
    return f"{exc.strerror or exc}{where}; {advice}"
