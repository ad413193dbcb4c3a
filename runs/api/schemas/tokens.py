"""In/Out schemas of the API tokens resource."""

from __future__ import annotations

from ninja import Field, ModelSchema
from pydantic import ConfigDict

from runs.api.inputs import In
from runs.models import ApiToken


class TokenIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "CI pipeline"}]})
    name: str = Field(min_length=1, max_length=100, description="What will use the token.")


class TokenOut(ModelSchema):
    active: bool

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    @staticmethod
    def resolve_active(token: ApiToken) -> bool:
        return token.revoked_at is None


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret: shown this once, never again.")
