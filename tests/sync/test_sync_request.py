"""The blocking twins of the escape hatch and of the request limits (`codegen_sync`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from codegen_sync import Codegen, NotFoundError, RateClass, ServerError
from codegen_sync.testing import Emulator

MiB = 1024 * 1024


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(time_scale=0.001, seed=5) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[Codegen]:
    with Codegen(**emu.client_options()) as sync_client:
        yield sync_client


def test_request_returns_decoded_json_with_limits_and_errors(
    client: Codegen, emu: Emulator
) -> None:
    before = client.rate_limit_status()
    me = client.request("GET", "/v1/users/me")
    assert me["id"] == emu.user_id
    created = client.request(
        "POST", f"/v1/organizations/{emu.org_id}/agent/run", json={"prompt": "hi"}
    )
    assert [run["id"] for run in emu.runs] == [created["id"]]
    after = client.rate_limit_status()
    assert after[RateClass.CREATE].remaining == before[RateClass.CREATE].remaining - 1
    with pytest.raises(NotFoundError):
        client.request("GET", f"/v1/organizations/{emu.org_id}/agent/run/987654321")


def test_request_retries_a_get_but_not_a_post(client: Codegen, emu: Emulator) -> None:
    emu.faults.add("error_before", route="get_current_user_info", status=503, times=1)
    assert client.request("GET", "/v1/users/me")["id"] == emu.user_id
    assert emu.counters.requests_by_route["get_current_user_info"] == 2
    emu.faults.add("error_before", route="create_agent_run", status=503, times=1)
    with pytest.raises(ServerError):
        client.request("POST", f"/v1/organizations/{emu.org_id}/agent/run", json={"prompt": "x"})
    assert emu.counters.requests_by_route["create_agent_run"] == 1


@pytest.mark.parametrize(
    "path", ["https://evil.example/v1/users/me", "//evil.example/v1/users/me", "/v1/../x"]
)
def test_request_refuses_a_path_off_the_base_url(client: Codegen, emu: Emulator, path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        client.request("GET", path)
    assert emu.counters.requests == 0


def test_oversized_bodies_big_ids_and_owned_headers_are_refused_unsent(
    client: Codegen, emu: Emulator
) -> None:
    with pytest.raises(ValueError, match="over max_request_bytes"):
        client.agent_runs.create("big", metadata={"blob": "x" * (10 * MiB)})
    with pytest.raises(ValueError, match="64-bit"):
        client.agent_runs.get(10**40)
    with pytest.raises(ValueError, match="Host"):
        client.with_options(headers={"Host": "evil.example"})
    with pytest.raises(ValueError, match="Transfer-Encoding"):
        client.request("GET", "/v1/users/me", headers={"Transfer-Encoding": "chunked"})
    assert emu.counters.requests == 0
    assert emu.runs == []


def test_the_request_cap_is_a_constructor_keyword(emu: Emulator) -> None:
    with Codegen(**emu.client_options(), max_request_bytes=100) as small:
        assert small.settings.max_request_bytes == 100
        with pytest.raises(ValueError, match=r"over max_request_bytes \(100\)"):
            small.agent_runs.create("x" * 200)
    assert emu.counters.requests == 0
