"""Personal API tokens: create (the secret is shown once), revoke, and authenticate.

A token reads ``pw_<prefix>_<secret>``. The prefix is public and indexed so one
row is fetched per request; the database holds only a SHA-256 of the whole
token (a fast hash suffices: the secret has 256 random bits, nothing to guess).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from runs.models import ApiToken

TOKEN_PREFIX = "pw_"
PREFIX_BYTES = 6  # 12 hex characters
# last_used_at is refreshed at most this often: no write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_TOKENS_PER_USER = 50


class TokenError(Exception):
    """A token request that cannot be honoured (bad name, too many, unknown token)."""


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    # The whole token; never stored, shown to its owner exactly once.
    plaintext: str


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


@transaction.atomic
def api_token_create(*, user: User, name: str) -> NewToken:
    """Mint a token for ``user``; the plaintext in the result is the only copy there will be."""
    name = name.strip()
    if not name:
        raise TokenError("Give the token a name, so you know later what uses it.")
    if len(name) > 100:
        raise TokenError("A token name has at most 100 characters.")
    active = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
    if active.count() >= MAX_TOKENS_PER_USER:
        raise TokenError(f"You already have {MAX_TOKENS_PER_USER} tokens; revoke one first.")
    prefix = secrets.token_hex(PREFIX_BYTES)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, secret_hash=token_hash(plaintext)
    )
    return NewToken(token=token, plaintext=plaintext)


@transaction.atomic
def api_token_revoke(*, user: User, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s own tokens (revoking twice is harmless)."""
    token = ApiToken.objects.select_for_update().filter(user=user, pk=token_id).first()
    if token is None:
        raise ApiToken.DoesNotExist(f"You have no token {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(plaintext: str) -> User | None:
    """The active user a presented token belongs to, or None for anything else."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        return None
    prefix, sep, _secret = plaintext[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(prefix) != PREFIX_BYTES * 2:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.secret_hash, token_hash(plaintext)):
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_tokens_of(user: User) -> list[ApiToken]:
    return list(ApiToken.objects.filter(user=user))
