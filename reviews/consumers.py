"""Websocket consumer of the review queue: tells reviewers' queue pages which items changed."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from runs.consumers import FORBIDDEN, HeartbeatConsumer
from runs.permissions import is_reviewer
from runs.publish import REVIEWS_GROUP


class ReviewQueueConsumer(HeartbeatConsumer):
    """Joins the review-queue group (reviewers and staff only; anyone else is closed with 4403)."""

    async def connect(self) -> None:
        if not await database_sync_to_async(is_reviewer)(self.scope.get("user")):
            await self.close(code=FORBIDDEN)
            return
        self.joined = True
        await self.channel_layer.group_add(REVIEWS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(REVIEWS_GROUP, self.channel_name)

    async def reviews_changed(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "changed", "items": message["items"]})
