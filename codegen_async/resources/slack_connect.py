"""Connecting a Slack account to Codegen."""

from __future__ import annotations

from .. import _operations as ops
from .._resource import Resource
from ..models import SlackConnectToken

__all__ = ["SlackConnect"]


class SlackConnect(Resource):
    __slots__ = ()

    async def generate_token(self) -> SlackConnectToken:
        """A one-time token (10 minutes) to DM the Codegen bot: "Connect my account: {token}"."""
        org_id = await self._org_id()
        return await self._call(ops.GENERATE_SLACK_CONNECT_TOKEN, json_body={"org_id": org_id})
