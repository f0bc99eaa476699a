"""The local Codegen API for sync users' tests: the same `Emulator` as `codegen_async`'s.

    from codegen_sync import Codegen
    from codegen_sync.testing import Emulator

    with Emulator(time_scale=0.001) as emu, Codegen(**emu.client_options()) as client:
        assert client.run("Write the release notes").succeeded

`with Emulator()` is a plain context manager: on exit it closes the in-process
connections it handed out. `emu.serve_in_thread()` serves it on 127.0.0.1.
"""

from codegen_async.testing import (
    DEFAULT_API_KEY,
    FAULT_KINDS,
    ROUTES,
    Counters,
    Emulator,
    Fault,
    Faults,
    result_for,
)

__all__ = [
    "DEFAULT_API_KEY",
    "FAULT_KINDS",
    "ROUTES",
    "Counters",
    "Emulator",
    "Fault",
    "Faults",
    "result_for",
]
