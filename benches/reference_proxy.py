"""The floor of a Python LLM proxy, for benches/gateway_overhead.py: Starlette plus a pooled client.

It reads the body, POSTs it to `REFERENCE_UPSTREAM` + the request path with the provider key, and
answers with the upstream's body, relaying a stream chunk by chunk as it arrives. No auth, no
parsing, no policy: what any Python proxy pays at least. `REFERENCE_CLIENT` picks the upstream
client, `aiohttp` (sluicegate's) or `httpx`, so the two can be compared in the same run.

    REFERENCE_UPSTREAM=http://127.0.0.1:9000 granian --interface asgi --loop uvloop reference_proxy:app
"""

import contextlib
import os

import aiohttp
import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("REFERENCE_UPSTREAM", "http://127.0.0.1:9000")
CLIENT = os.environ.get("REFERENCE_CLIENT", "aiohttp")
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
pool: dict[str, aiohttp.ClientSession | httpx.AsyncClient] = {}


async def proxy_aiohttp(request: Request) -> Response:
    session = pool["aiohttp"]
    assert isinstance(session, aiohttp.ClientSession)
    resp = await session.post(UPSTREAM + request.url.path, data=await request.body(), headers=HEADERS)
    media_type = resp.headers.get("content-type", "application/json")
    if media_type.startswith("text/event-stream"):
        return StreamingResponse(
            resp.content.iter_any(), resp.status, media_type=media_type, background=BackgroundTask(resp.release)
        )
    body = await resp.read()
    resp.release()
    return Response(body, resp.status, media_type=media_type)


async def proxy_httpx(request: Request) -> Response:
    client = pool["httpx"]
    assert isinstance(client, httpx.AsyncClient)
    req = client.build_request("POST", UPSTREAM + request.url.path, content=await request.body(), headers=HEADERS)
    resp = await client.send(req, stream=True)
    media_type = resp.headers.get("content-type", "application/json")
    if media_type.startswith("text/event-stream"):
        return StreamingResponse(
            resp.aiter_raw(), resp.status_code, media_type=media_type, background=BackgroundTask(resp.aclose)
        )
    body = await resp.aread()
    await resp.aclose()
    return Response(body, resp.status_code, media_type=media_type)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    if CLIENT == "httpx":
        limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024, keepalive_expiry=60)
        pool["httpx"] = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0))
    else:
        pool["aiohttp"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024), auto_decompress=False)
    yield
    for client in pool.values():
        await (client.close() if isinstance(client, aiohttp.ClientSession) else client.aclose())


handler = proxy_httpx if CLIENT == "httpx" else proxy_aiohttp
app = Starlette(routes=[Route("/{path:path}", handler, methods=["POST"])], lifespan=lifespan)
