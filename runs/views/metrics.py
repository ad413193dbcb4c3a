"""``/metrics``: the Prometheus text format, for a scraper holding the token or on an allowed address."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runs.metrics import registry

log = logging.getLogger(__name__)


def scraper_allowed(request: HttpRequest) -> bool | None:
    """True: the scraper may read; False: refused (403); None: it must authenticate (401)."""
    token: str = settings.PLANNERWEB_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        address = None
    networks = settings.PLANNERWEB_METRICS_ALLOW
    if address is not None and any(
        address in ipaddress.ip_network(n, strict=False) for n in networks
    ):
        return True
    return None if token else False


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    allowed = scraper_allowed(request)
    if allowed is None:
        response = HttpResponse("metrics need the scrape token\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not allowed:
        return HttpResponse("metrics are not served to this address\n", status=403)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
