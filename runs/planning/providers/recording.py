"""Recorded model answers: what each provider answered a run, kept so it can be served again.

With ``PLANNERWEB_RECORD_MODEL_ANSWERS`` on, the providers' SDKs send their requests
through ``RecordingTransport``; each answer is stored as a ``ModelAnswer`` of the run
the call was made for (the run the telemetry context names), under the key of the
exact request (``request_key``). A golden task saved from such a run carries these
answers as its cassette (``runs.evals.golden``), so ``--replay`` serves them back.
Only the request's key is kept, never its body; the answer is redacted as it is stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import httpx2 as httpx
from django.conf import settings

from runs.models import ModelAnswer
from runs.redaction import Redactor
from runs.telemetry.context import RUN_ID
from runs.textdata import TextDataError, parse_json

log = logging.getLogger(__name__)


def request_key(provider: str, path: str, body: Any) -> str:
    """The identity of a model request: provider, endpoint and the whole body (prompt included)."""
    text = json.dumps([provider, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def endpoint(url: httpx.URL, base_url: str) -> str:
    """The request's path below the provider's base URL (``responses``, ``v1/messages``)."""
    base = httpx.URL(base_url).path.rstrip("/") if base_url else ""
    path = url.path
    if base and path.startswith(base + "/"):
        path = path[len(base) :]
    return path.lstrip("/")


class RecordingTransport(httpx.HTTPTransport):
    """Sends as usual, then stores the answer for the run the call is made for."""

    def __init__(self, provider: str, base_url: str) -> None:
        super().__init__()
        self.provider = provider
        self.base_url = base_url

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        run_id = RUN_ID.get()
        if run_id is None or request.method != "POST":
            return response
        response.read()
        try:
            body = parse_json(request.content or b"null")
            answer = parse_json(response.content)
        except TextDataError:
            return response  # not a JSON exchange: nothing a cassette could serve
        path = endpoint(request.url, self.base_url)
        ModelAnswer.objects.create(
            run_id=run_id,
            provider=self.provider,
            path=path,
            key=request_key(self.provider, path, body),
            status=response.status_code,
            body=Redactor(run_id).value(answer),
        )
        return response


def recording_client(provider: str, base_url: str) -> httpx.Client | None:
    """An HTTP client that records each answer when recording is on; None = the SDK's own."""
    if not settings.PLANNERWEB_RECORD_MODEL_ANSWERS:
        return None
    return httpx.Client(transport=RecordingTransport(provider, base_url))
