"""The http kind: one HTTP request, standard library only.

Config shape (``Tool.config``)::

    {"method": "POST", "url": "http://host/api/items/{name}", "headers": {...},
     "body": {...} | null, "output": "json" | "text", "ok_status": [200, 201]}

* URL placeholders ``{name}`` become ``urllib.parse.quote(text, safe="")``, so a
  value can never add a path segment, a query or change the host; placeholders
  are refused in the scheme and host part at validation (no server-side request
  forgery through parameters).
* Body: a string that is exactly ``"{name}"`` becomes the typed parameter value
  (the key is dropped when the parameter is absent); other strings are
  interpolated as text. With no ``body`` key, POST/PUT/PATCH send the params
  object as JSON and other methods send the params not used in the URL as the
  query string; ``"body": null`` sends nothing.
* Headers are fixed by the tool author (no placeholders). Every request also
  carries the step's ``Idempotency-Key`` (the same on every call for one step of
  one run, retries and crash takeovers included); it replaces a configured one.

``urllib`` runs in a worker thread with the tool's timeout as the socket timeout.
A cancelled call returns at once, but its thread lives until the socket times out.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import Any

from django.conf import settings

from runs.telemetry.tracing import traceparent
from runs.textdata import TextDataError, parse_json
from runs.tools.base import PLACEHOLDER, ToolConfigError, ToolError, ToolSpec, param_text

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
_BODY_METHODS = ("POST", "PUT", "PATCH")
_CONFIG_KEYS = {"method", "url", "headers", "body", "output", "ok_status"}
_OUTPUTS = ("json", "text")
# What the admin's config field says about this kind.
CONFIG_HELP = (
    '"url" (with {param} placeholders in the path or query, never the host), optional '
    '"method" (GET by default), "headers", "body" (an object; "{param}" alone keeps the '
    'value\'s type), "output" ("json" or "text") and "ok_status" (a list of codes). '
    'Example: {"method": "POST", "url": "http://host/api/items/{name}"}'
)
KEY_HEADER = "Idempotency-Key"
_WHOLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_opener = urllib.request.build_opener()
_MISSING = object()


def validate_config(config: dict[str, Any], *, parameters_schema: dict | None = None) -> list[str]:
    """Every problem with an http config; with the tool's schema, also unknown placeholders."""
    if not isinstance(config, dict):
        return ["config must be an object"]
    problems = [f"unknown key {k!r}" for k in sorted(set(config) - _CONFIG_KEYS)]
    method = config.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        problems.append(f"method must be one of {list(METHODS)}")
    url = config.get("url")
    used: set[str] = set()
    if not isinstance(url, str) or not re.match(r"^https?://", url):
        problems.append("url is required and must start with http:// or https://")
    else:
        authority = re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]
        if PLACEHOLDER.search(authority):
            problems.append("url must not take its host from a parameter")
        used |= set(PLACEHOLDER.findall(url))
    headers = config.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        problems.append("headers must be an object of string values")
    elif any("\r" in v or "\n" in v for v in headers.values()):
        problems.append("header values must not contain line breaks")
    if "body" in config:
        used |= _body_placeholders(config["body"])
    if config.get("output", "json") not in _OUTPUTS:
        problems.append(f"output must be one of {list(_OUTPUTS)}")
    if "ok_status" in config:
        ok = config["ok_status"]
        if (
            not isinstance(ok, list)
            or not ok
            or not all(
                isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in ok
            )
        ):
            problems.append("ok_status must be a non-empty list of HTTP status codes")
    if isinstance(parameters_schema, dict):
        props = parameters_schema.get("properties")
        known = set(props) if isinstance(props, dict) else set()
        for name in sorted(used - known):
            problems.append(f"{{{name}}} is not a parameter")
    return problems


def _body_placeholders(body: Any) -> set[str]:
    if isinstance(body, str):
        return set(PLACEHOLDER.findall(body))
    if isinstance(body, dict):
        return set().union(*(_body_placeholders(v) for v in body.values()))
    if isinstance(body, list):
        return set().union(*(_body_placeholders(v) for v in body))
    return set()


def _text_of(name: str, params: dict[str, Any], where: str) -> str:
    if params.get(name) is None:
        raise ToolError(f"the {where} needs parameter {name!r}, which was not given")
    return param_text(params[name])


def build_url(template: str, params: dict[str, Any]) -> str:
    return PLACEHOLDER.sub(
        lambda m: urllib.parse.quote(_text_of(m[1], params, "url"), safe=""), template
    )


def build_body(template: Any, params: dict[str, Any]) -> Any:
    """Fill body placeholders; returns ``_MISSING`` for a whole-value placeholder with no param."""
    if isinstance(template, str):
        whole = _WHOLE.match(template)
        if whole:
            return params.get(whole[1], _MISSING)
        return PLACEHOLDER.sub(lambda m: _text_of(m[1], params, "body"), template)
    if isinstance(template, dict):
        filled = {k: build_body(v, params) for k, v in template.items()}
        return {k: v for k, v in filled.items() if v is not _MISSING}
    if isinstance(template, list):
        return [v for v in (build_body(t, params) for t in template) if v is not _MISSING]
    return template


async def invoke(spec: ToolSpec, params: dict[str, Any], idempotency_key: str | None = None) -> Any:
    """Send the request; ``{"status", "body"}`` with the body parsed (json) or as text."""
    config = spec.config
    if problems := validate_config(config):
        raise ToolConfigError(f"tool {spec.name!r} is misconfigured: " + "; ".join(problems))
    method = config.get("method", "GET").upper()
    url = build_url(config["url"], params)
    headers = {"User-Agent": "plannerweb"} | dict(config.get("headers") or {})
    if idempotency_key is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != KEY_HEADER.lower()}
        headers[KEY_HEADER] = idempotency_key
    if parent := traceparent():  # the service's spans join the run's trace
        headers = {k: v for k, v in headers.items() if k.lower() != "traceparent"}
        headers["traceparent"] = parent
    lower = {k.lower() for k in headers}
    output = config.get("output", "json")
    if output == "json" and "accept" not in lower:
        headers["Accept"] = "application/json"

    data: bytes | None = None
    if "body" in config:
        body = build_body(config["body"], params) if config["body"] is not None else None
        if body is _MISSING:
            raise ToolError(
                f"the body needs parameter {config['body'][1:-1]!r}, which was not given"
            )
        if body is not None:
            data = json.dumps(body).encode()
    elif method in _BODY_METHODS:
        data = json.dumps(params).encode()
    else:
        in_url = set(PLACEHOLDER.findall(config["url"]))
        query = {k: param_text(v) for k, v in params.items() if k not in in_url and v is not None}
        if query:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
    if data is not None and "content-type" not in lower:
        headers["Content-Type"] = "application/json"

    cap = int(settings.PLANNERWEB_OUTPUT_CAP_BYTES)
    status, raw, truncated, charset = await asyncio.to_thread(
        _send, url, method, data, headers, spec.timeout_seconds, cap
    )
    text = raw.decode(charset or "utf-8", errors="replace")
    ok_status = config.get("ok_status")
    if (status not in ok_status) if ok_status else status >= 400:
        shown = url.split("?", 1)[0]
        raise ToolError(
            f"HTTP {status} from {method} {shown}: {text[:500]}",
            details={"status": status, "body": text[:500]},
        )
    if output == "text":
        return {"status": status, "body": text, "truncated": truncated}
    if truncated:
        raise ToolError(f"response body is over {cap} bytes, too long to parse as JSON")
    if not text.strip():
        return {"status": status, "body": None}
    try:
        return {"status": status, "body": parse_json(text)}  # bounded: untrusted text
    except TextDataError as exc:
        raise ToolError(
            f"response is not JSON: {text[:200]!r} ({exc})",
            details={"status": status, "body": text[:200]},
        ) from None


def _send(
    url: str, method: str, data: bytes | None, headers: dict[str, str], timeout: float, cap: int
) -> tuple[int, bytes, bool, str | None]:
    """Blocking request (runs in a thread): status, body up to ``cap``, truncated, charset."""
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _opener.open(request, timeout=timeout) as response:
            raw = response.read(cap + 1)
            return (
                response.status,
                raw[:cap],
                len(raw) > cap,
                response.headers.get_content_charset(),
            )
    except urllib.error.HTTPError as exc:  # a status urllib does not accept: judged by the caller
        with exc:
            raw = exc.read(cap + 1)
        return exc.code, raw[:cap], len(raw) > cap, exc.headers.get_content_charset()
    except TimeoutError:
        raise ToolError(f"{method} {url}: no answer within {timeout:g}s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ToolError(f"{method} {url}: no answer within {timeout:g}s") from None
        raise ToolError(f"{method} {url}: {exc.reason}") from None
    except (HTTPException, OSError, ValueError) as exc:
        raise ToolError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
