"""A local, in-memory Codegen API for tests: `Emulator`.

    from codegen_async.testing import Emulator

    async with Emulator(time_scale=0.01) as emu:
        client = AsyncCodegen(**emu.client_options())

See `Emulator` for the knobs, `emu.faults` (`Faults`) for injected failures, and
`ROUTES` for the route names faults and counters use (each operationId up to
`_v1_`, plus `legacy_run` for `POST /v1/run`).
"""

from __future__ import annotations

from ._app import ROUTE_RATE_CLASSES, ROUTES
from ._emulator import DEFAULT_API_KEY, IN_PROCESS_BASE_URL, Counters, Emulator
from ._faults import DRIP_CHUNK_BYTES, FAULT_HEADER, FAULT_KINDS, Fault, Faults
from ._lifecycle import result_for

__all__ = [
    "DEFAULT_API_KEY",
    "DRIP_CHUNK_BYTES",
    "FAULT_HEADER",
    "FAULT_KINDS",
    "IN_PROCESS_BASE_URL",
    "ROUTES",
    "ROUTE_RATE_CLASSES",
    "Counters",
    "Emulator",
    "Fault",
    "Faults",
    "result_for",
]
