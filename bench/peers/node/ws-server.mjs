// The plain Node peer most tutorials build: `ws` for WebSockets, ioredis pub/sub between
// instances (one subscriber connection per process, a Redis SUBSCRIBE per channel with
// local subscribers). No history, no recovery: what is published while a client is away
// is gone.
//   client frames: {"sub":"<channel>","id":<n>} and {"pub":"<channel>","data":"<text>","id":<n>}
//   server frames: the published text as it is, and {"ack":<n>} after SUBSCRIBE or
//   PUBLISH returned, {"nack":<n>} when PUBLISH failed
import { createServer } from "node:http";
import { WebSocketServer } from "ws";
import { onShutdown, options, redisClient } from "./common.mjs";

const opts = options();
const pub = redisClient(opts);
const sub = redisClient(opts, { subscriber: true });
const local = new Map(); // channel -> { sockets, subscribed: the SUBSCRIBE promise }

sub.on("message", (channel, data) => {
  for (const ws of local.get(channel)?.sockets ?? []) ws.send(data);
});

const http = createServer((req, res) => {
  res.writeHead(req.url === "/ready" ? 200 : 404).end();
});
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
wss.on("connection", (ws) => {
  const mine = new Set();
  ws.on("message", async (raw) => {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (typeof frame.sub === "string") {
      let entry = local.get(frame.sub);
      if (!entry) {
        entry = { sockets: new Set(), subscribed: sub.subscribe(frame.sub) };
        local.set(frame.sub, entry);
      }
      entry.sockets.add(ws);
      mine.add(frame.sub);
      await entry.subscribed;
      ws.send(JSON.stringify({ ack: frame.id }));
    } else if (typeof frame.pub === "string") {
      try {
        await pub.publish(frame.pub, String(frame.data));
        ws.send(JSON.stringify({ ack: frame.id }));
      } catch {
        ws.send(JSON.stringify({ nack: frame.id }));
      }
    }
  });
  ws.on("close", () => {
    for (const channel of mine) local.get(channel)?.sockets.delete(ws);
  });
});
http.listen(opts.port, "127.0.0.1");
onShutdown(async () => {
  for (const ws of wss.clients) ws.close(1001, "shutdown");
  await new Promise((resolve) => wss.close(resolve));
  http.close();
});
