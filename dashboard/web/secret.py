"""The key signing Flask sessions, the same in every web worker and across restarts."""
from __future__ import annotations

import os
import secrets
import time

from ..settings import Settings

FILE = "secret_key"


def secret_key(settings: Settings) -> str:
    """SECRET_KEY, or the one in VAR_DIR/secret_key, created once (by whichever process comes first:
    written to a temporary file, then linked into place, so no one reads half a key)."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.var_path / FILE
    for _ in range(50):
        try:
            text = path.read_text().strip()
            if text:
                return text
        except FileNotFoundError:
            pass
        tmp = path.with_name(f".{FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker won: read its key
        finally:
            os.unlink(tmp)
        time.sleep(0.01)
    raise RuntimeError(f"cannot read or create {path}")
