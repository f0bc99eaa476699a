"""Standard logging under the `codegen_async` logger; `CODEGEN_LOG=debug|info` turns it on.

Log lines name the method, URL, status, request id, time and attempt: never a header,
so never the key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from ._errors import ConfigurationError

__all__ = ["configure_from_env"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_configured = False


def configure_from_env(env: Mapping[str, str] | None = None) -> None:
    """Once per process: with CODEGEN_LOG set, log to stderr at that level."""
    global _configured
    if _configured:
        return
    raw = (os.environ if env is None else env).get("CODEGEN_LOG", "").strip().lower()
    if not raw:
        return
    level = _LEVELS.get(raw)
    if level is None:
        raise ConfigurationError(
            f"CODEGEN_LOG (environment) must be one of {', '.join(_LEVELS)}, got {raw!r}"
        )
    logger = logging.getLogger("codegen_async")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    _configured = True
