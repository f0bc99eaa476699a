"""`install`: the task's options, idempotence, where the ledger lives, and one client per
process (made on first use, dropped in a forked child, closed at the end)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

celery = pytest.importorskip("celery") if not os.environ.get("CI") else __import__("celery")

from codegen_async import ConfigurationError  # noqa: E402
from codegen_sync import RateLimits  # noqa: E402
from codegen_sync import celery as codegen_celery  # noqa: E402


def memory_app() -> object:
    return celery.Celery("t", broker="memory://", backend="cache+memory://")


def test_install_registers_the_task_once(tmp_path: Path) -> None:
    app = memory_app()
    store = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    task = codegen_celery.install(app, store=store, api_key="k")
    assert codegen_celery.install(app, store=store, api_key="other") is task
    registered = app.tasks["codegen.run"]  # type: ignore[attr-defined]
    assert task.name == registered.name == "codegen.run"
    assert registered.acks_late is True
    assert registered.reject_on_worker_lost is True
    assert registered.max_retries is None


def test_the_ledger_store_is_chosen_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEGEN_RATE_LIMIT_STORE", raising=False)
    given = f"sqlite:///{tmp_path / 'given.sqlite3'}"
    shared = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    from_env = f"sqlite:///{tmp_path / 'env.sqlite3'}"

    def chosen(app: object, **options: object) -> str:
        codegen_celery.install(app, **options)
        return str(app._codegen_fleet.store_url)  # type: ignore[attr-defined]

    limits = RateLimits.documented().shared(shared)
    assert chosen(memory_app(), store=given, rate_limits=limits) == given
    assert chosen(memory_app(), rate_limits=limits) == shared
    monkeypatch.setenv("CODEGEN_RATE_LIMIT_STORE", from_env)
    assert chosen(memory_app()) == from_env
    monkeypatch.delenv("CODEGEN_RATE_LIMIT_STORE")
    broker = celery.Celery("t", broker="redis://127.0.0.1:1/0")
    assert chosen(broker) == "redis://127.0.0.1:1/0"
    with pytest.raises(ConfigurationError, match="needs a store every worker shares"):
        codegen_celery.install(memory_app())
    with pytest.raises(ConfigurationError, match="relative path"):
        codegen_celery.install(memory_app(), store="sqlite:///relative.sqlite3")


def test_one_client_per_process_never_carried_across_a_fork(tmp_path: Path) -> None:
    app = memory_app()
    store = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    codegen_celery.install(app, store=store, api_key="k", base_url="http://127.0.0.1:9")
    fleet = app._codegen_fleet  # type: ignore[attr-defined]
    client, ledger = fleet.parts()
    assert fleet.parts() == (client, ledger)  # made once per process
    parent_client = id(client)
    pid = os.fork()
    if pid == 0:  # the child: a client of its own, the parent's never used
        code = 1
        try:
            child_client, _ = fleet.parts()
            code = 0 if id(child_client) != parent_client and child_client is not client else 2
            fleet.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert fleet.parts()[0] is client  # the parent's is untouched
    fleet.close()
    assert fleet.parts()[0] is not client  # closed at the end; a new one if used again
    fleet.close()
