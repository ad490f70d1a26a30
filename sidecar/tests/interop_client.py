"""A client nobody here wrote: Python `websockets` (Debian's python3-websockets) speaking
protocol v1 to a real sidecar. Exit 0 and print OK when every step behaved."""
import asyncio
import json
import sys

import websockets


async def main(url: str) -> None:
    async with websockets.connect(url) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert welcome["type"] == "welcome", welcome
        await ws.send(json.dumps({"op": "subscribe", "channel": "py:room", "id": 1}))
        sub = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert sub["type"] == "subscribed" and sub["id"] == 1, sub
        await ws.send(json.dumps({"op": "publish", "channel": "py:room", "data": {"hello": "from python"}, "id": 2}))
        reply, message = None, None
        while reply is None or message is None:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame.get("id") == 2:
                reply = frame
            elif frame["type"] == "message":
                message = frame
        assert reply["ok"] is True, reply
        assert message["offset"] == reply["offset"], (message, reply)
        assert message["data"] == {"hello": "from python"}, message
        await ws.send("{broken")
        err = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["type"] == "error" and err["code"] == "bad_json", err
    print("OK")


asyncio.run(main(sys.argv[1]))
