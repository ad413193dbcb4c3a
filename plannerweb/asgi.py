"""ASGI entry point: HTTP plus authenticated websockets, and the embedded worker when enabled."""

import asyncio
import os

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plannerweb.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from reviews.routing import websocket_urlpatterns as review_urlpatterns  # noqa: E402
from runs.mcp_server.endpoint import PATH as MCP_PATH  # noqa: E402
from runs.mcp_server.endpoint import endpoint as mcp_endpoint  # noqa: E402
from runs.publish import publisher  # noqa: E402
from runs.routing import websocket_urlpatterns as run_urlpatterns  # noqa: E402

router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([*run_urlpatterns, *review_urlpatterns]))
        ),
    }
)


async def application(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    # The in-memory channel layer must be fed from the loop its consumers run on.
    publisher.bind_loop(asyncio.get_running_loop())
    if scope["type"] == "http" and scope["path"].rstrip("/") == MCP_PATH:
        return await mcp_endpoint(scope, receive, send)  # plannerweb as an MCP server
    return await router(scope, receive, send)


# Embedded default: runs execute in worker threads of this serving process.
from runs.lifecycle.worker import start_embedded_worker, tune_gc_for_service  # noqa: E402

start_embedded_worker()

# Everything loaded by now (Django, the apps, Twisted, the worker) lives as long as the process.
tune_gc_for_service()
