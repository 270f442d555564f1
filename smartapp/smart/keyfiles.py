"""Secrets generated on first start into the instance folder (the Flask session key, the token
encryption key, the app's private JWKS), readable by the app's user only (mode 0600).

Several app instances behind one database must share these: configure them explicitly then
(SMARTAPP_SECRET_KEY, SMARTAPP_TOKEN_KEY, SMARTAPP_SMART_PRIVATE_JWKS_PATH).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

OWNER_ONLY = 0o600
# Another process may have created the file and not yet written it: wait this long for it.
WRITE_WAIT_S = 2.0


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The file's bytes; when it does not exist, ``make()`` is written to it first, created
    exclusively with mode 0600 so two processes starting together agree on one value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
    except FileExistsError:
        return _read_private(path)
    data = make()
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    log.info("generated %s (mode 0600)", path.name)
    return data


def _read_private(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users: restrict it to mode 0600", path)
    deadline = time.monotonic() + WRITE_WAIT_S
    while not (data := path.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not data:
        raise ValueError(f"{path} is empty: delete it to have it generated again")
    return data
