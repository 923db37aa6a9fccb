"""Writing a user-visible file safely: one place for it.

`atomic_file(path)` yields a file to write; it is a temporary file created exclusively
(`tempfile.mkstemp`) next to `path`, renamed over `path` only when the block ends without an
error, and removed otherwise. An earlier `path` is therefore either kept whole or replaced
whole, and nothing but the temporary file this call created is ever removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic_file(path: str, newline: str | None = None) -> Iterator[IO[str]]:
    """A text file (utf-8) that becomes `path` when the with-block succeeds; the file gets
    the permissions a plain `open(path, "w")` would give (0o666 minus the umask)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", newline=newline, encoding="utf-8") as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
