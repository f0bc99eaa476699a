"""Import time: `import codegen_async` (and `import codegen_sync`) load only what a first
call needs; the rest loads on first use through each package's `_LAZY` table (PEP 562).

Every check that looks at `sys.modules` runs in a fresh interpreter (this one has
imported everything already)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import codegen_async
import codegen_sync

ROOT = Path(__file__).resolve().parents[2]

# What a first call does not need: none of it is loaded by a plain import.
DEFERRED = (
    "codegen_async._fanout",
    "codegen_async._journal",
    "codegen_async._synthesis",
    "codegen_async._telemetry",
    "codegen_async._stores.sqlite",
    "codegen_async._stores.redis",
    "codegen_async.testing",
    "codegen_async.cli",
    "opentelemetry",
    "sqlite3",
    "redis",
)


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("package", [codegen_async, codegen_sync], ids=lambda m: m.__name__)
def test_the_lazy_table_matches_all(package: object) -> None:
    lazy: dict[str, str] = package._LAZY  # type: ignore[attr-defined]
    public = set(package.__all__)  # type: ignore[attr-defined]
    assert set(lazy) <= public, f"lazy names not in __all__: {set(lazy) - public}"
    module_globals = vars(package)
    eager = {n for n in public if n in module_globals and n not in lazy}
    missing = public - set(lazy) - eager
    assert not missing, f"names in __all__ neither imported nor in _LAZY: {missing}"
    assert set(dir(package)) >= public


@pytest.mark.parametrize("package", ["codegen_async", "codegen_sync"])
def test_every_lazy_name_resolves_in_a_fresh_interpreter(package: str) -> None:
    code = (
        f"import {package} as p\n"
        "for name in p._LAZY:\n"
        "    value = getattr(p, name)\n"
        "    assert value is not None, name\n"
        "    assert vars(p)[name] is value, name  # cached as a plain global\n"
        f"from {package} import *\n"
    )
    loaded = loaded_after(code)
    assert "codegen_async._fanout" in loaded  # the lazy names did load their modules


def test_a_lazy_name_is_the_object_of_its_module() -> None:
    for name, module in codegen_async._LAZY.items():
        owner = importlib.import_module(module, "codegen_async")
        assert getattr(codegen_async, name) is getattr(owner, name), name


def test_an_unknown_name_raises_attribute_error_naming_it() -> None:
    for package in (codegen_async, codegen_sync):
        with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
            package.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_import_codegen_async_loads_only_what_a_first_call_needs() -> None:
    loaded = loaded_after("import codegen_async")
    assert not loaded & set(DEFERRED), sorted(loaded & set(DEFERRED))
    assert "codegen_async._client" in loaded  # the client itself is not deferred


def test_import_codegen_sync_loads_nothing_more() -> None:
    loaded = loaded_after("import codegen_sync")
    assert not {m for m in loaded if m.startswith("codegen_async")}
    assert "codegen_sync._generated" not in loaded


def test_making_a_client_without_tracing_loads_no_fan_out_nor_telemetry() -> None:
    code = (
        "import codegen_async, codegen_sync\n"
        "codegen_async.AsyncCodegen(api_key='k', org_id=1, tracing=False)\n"
        "codegen_sync.Codegen(api_key='k', org_id=1, tracing=False).close()\n"
    )
    loaded = loaded_after(code)
    assert not loaded & set(DEFERRED), sorted(loaded & set(DEFERRED))


def test_a_fan_out_loads_its_modules_on_first_use() -> None:
    code = (
        "import codegen_async\n"
        "client = codegen_async.AsyncCodegen(api_key='k', org_id=1, tracing=False)\n"
        "client.run_many(['a'])\n"
    )
    loaded = loaded_after(code)
    assert {"codegen_async._fanout", "codegen_async._journal"} <= loaded


def test_the_cli_loads_no_fan_out_nor_emulator_for_help() -> None:
    loaded = loaded_after(
        "import contextlib, io\n"
        "from codegen_async.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
    )
    deferred = set(DEFERRED) - {"codegen_async.cli"}
    assert not loaded & deferred, sorted(loaded & deferred)
    assert "codegen_async.cli._commands" not in loaded
