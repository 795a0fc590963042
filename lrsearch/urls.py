"""Database URLs as lrsearch shows them: never with a password.
"""

from __future__ import annotations

import re

_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@]*:)(?P<password>[^@]*)(?P<tail>@)", re.I
)


def redact(text: str) -> str:
    """``text`` with the password of any database URL in it replaced by ``***``."""
    return _PASSWORD.sub(r"\g<head>***\g<tail>", text)
