"""A driver for callgrind: N non-streamed calls through `Gateway.handle` to the in-process mock,
a model routed the plain way (no route). Instructions per call = (run of N - run of 0) / N:

    PYTHONPATH=$PWD/python valgrind --tool=callgrind .venv/bin/python benches/route_loop.py 2000
    PYTHONPATH=$PWD/python valgrind --tool=callgrind .venv/bin/python benches/route_loop.py 0
"""

import asyncio
import sys

from sluicegate.config import Settings
from sluicegate.formats import FORMATS_BY_PATH
from sluicegate.policy.pipeline import Gateway
from sluicegate.secrets import hash_key

KEY = "sg-test-" + "k" * 40
N = int(sys.argv[1])
settings = Settings.model_validate(
    {
        "providers": {"mock": {"kind": "mock", "models": ["mock-gpt"]}},
        "routing": {"default_openai": "mock"},
        "keys": [{"name": "t", "sha256": hash_key(KEY)}],
    }
)
BODY = b'{"model":"mock-gpt","messages":[{"role":"user","content":"hello there"}],"max_tokens":10}'
SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/chat/completions",
    "headers": [
        (b"authorization", b"Bearer " + KEY.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
FMT = FORMATS_BY_PATH["/v1/chat/completions"]


async def main() -> None:
    gw = Gateway(settings, {})
    await gw.start()

    async def receive():
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message):
        pass

    for _ in range(50):
        await gw.handle(SCOPE, receive, send, FMT)
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    for _ in range(N):
        out = await gw.handle(SCOPE, receive, send, FMT)
    if N:
        assert out.status == 200, out
    await gw.stop()


asyncio.run(main())
