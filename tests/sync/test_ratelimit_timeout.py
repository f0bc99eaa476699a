"""The blocking twin of a create that finds no rate-limit token (issue 21.8 and 21.11)."""

from __future__ import annotations

from pathlib import Path

import pytest

import codegen_sync
from codegen_async.testing import Emulator
from codegen_sync import Codegen, Limit, RateClass, RateLimits


@pytest.mark.parametrize("shared", [False, True], ids=["local", "sqlite-store"])
def test_a_blocking_create_without_a_token_says_so(tmp_path: Path, shared: bool) -> None:
    limits = RateLimits({RateClass.CREATE: Limit(1, 3600.0)})
    if shared:
        limits = limits.shared(f"sqlite:///{tmp_path / 'limits.sqlite3'}")
    with Emulator(time_scale=0.001, rate_limits=False) as emu:
        options = {**emu.client_options(), "rate_limits": limits, "timeout": 30.0}
        with Codegen(**options) as client:
            client.agent_runs.create("takes the only token")
            with pytest.raises(codegen_sync.RateLimitTimeoutError) as info:
                client.agent_runs.create("finds none")
        assert sorted(emu.prompts.values()) == ["takes the only token"]
    error = info.value
    assert isinstance(error, codegen_sync.APITimeoutError)
    assert (error.sent, error.rate_class) == (False, "create")
    assert error.next_token_in is not None
    assert 3500 < error.next_token_in <= 3600
    assert "no create rate-limit token" in str(error)
    assert "nothing was sent" in str(error)
