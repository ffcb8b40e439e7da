"""The one exception type users see: a single line naming the file/keyword and the fix."""

from __future__ import annotations


class LtauError(Exception):
    """A user-facing error whose message is one line: what is wrong, where, and what to do.

    The CLI prints ``ltau-md: error: <message>`` and exits with status 2; nothing else is shown
    (1 for a :class:`RunFailed`).
    """

    def __init__(self, message: str) -> None:
        # Keep the promise of one line even when a caller interpolates a multi-line repr.
        super().__init__(" ".join(str(message).split()))


class ArtifactError(LtauError):
    """A ``NAME.ltau`` artifact is missing a part, corrupted, or does not match its model."""


class ErrorLogError(LtauError):
    """An error log directory is missing a part or is inconsistent."""


class RunFailed(LtauError):
    """A step that started and failed (nequip-train, a walker's MD), not a bad input: the CLI exits
    with status 1, as ``ltau-md run`` does for LAMMPS's errors."""
