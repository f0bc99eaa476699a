"""The FastAPI recipe, as printed in docs/guide/recipes.md, answers an unknown run with 404."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from codegen_async.testing import Emulator
from codegen_async.testing._serve import serve_app_in_thread

RECIPES = Path(__file__).resolve().parents[2] / "docs" / "guide" / "recipes.md"


def fastapi_recipe() -> str:
    text = RECIPES.read_text()
    section = text[text.index("## A FastAPI backend\n") :]
    match = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert match, "the FastAPI recipe has no python block"
    return match.group(1)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The recipe's app, its client made from the environment of a served Emulator."""
    emu = Emulator(time_scale=0.0005, seed=7)
    with serve_app_in_thread(emu.wire_app, port=0) as base_url:
        monkeypatch.setenv("CODEGEN_API_KEY", emu.api_key)
        monkeypatch.setenv("CODEGEN_BASE_URL", base_url)
        monkeypatch.setenv("CODEGEN_ORG_ID", str(emu.org_id))
        namespace: dict[str, Any] = {"__name__": "recipe"}  # not __main__: no demo run
        exec(compile(fastapi_recipe(), str(RECIPES), "exec"), namespace)
        yield namespace["app"]


def test_the_fastapi_recipe_answers_404_for_an_unknown_run(app: Any) -> None:
    with TestClient(app, raise_server_exceptions=False) as http:
        started = http.post("/fixes", params={"issue": "login fails on Safari"})
        assert started.status_code == 200, started.text
        known = http.get(f"/fixes/{started.json()['run_id']}")
        assert known.status_code == 200, known.text
        assert set(known.json()) == {"status", "result"}
        unknown = http.get("/fixes/999999")
        assert unknown.status_code == 404, (unknown.status_code, unknown.text)
        assert unknown.json() == {"detail": "no such run"}
