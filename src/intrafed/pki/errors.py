"""The one error family of ``intrafed.pki``: an operation refused, with the fix."""

from __future__ import annotations


class PkiError(Exception):
    """A certificate, key or store operation that cannot be done.

    ``what`` names the file, option or certificate concerned; the text is one line:
    ``what: message — fix``.
    """

    def __init__(self, what: str, message: str, fix: str) -> None:
        super().__init__(f"{what}: {message} — {fix}")
        self.what = what
        self.message = message
        self.fix = fix
