"""Start-up checks of the access layer."""
from __future__ import annotations

from ..errors import CliError

MISSING_SECRET = ("SECRET_KEY is not set. Outside demo mode (DEMO=false or --no-demo) the key signing "
                  "sessions must come from the environment, the same for every web process: set SECRET_KEY "
                  "to a long random value, e.g. the output of: python -c \"import secrets; print(secrets.token_hex(32))\"")


def require_secret_key(settings) -> None:
    """Refuse to start outside demo mode without SECRET_KEY (a demo keeps its generated key in VAR_DIR)."""
    if not settings.demo and not settings.secret_key:
        raise CliError(MISSING_SECRET)
