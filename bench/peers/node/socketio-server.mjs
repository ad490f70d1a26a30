// The Socket.IO peer: socket.io with @socket.io/redis-streams-adapter on ioredis, tuned as
// the Socket.IO docs recommend (websocket transport only, no per-message deflate,
// bufferutil installed, connection state recovery enabled so a reconnecting client gets
// its rooms and missed events back, onlyPlaintext since the events carry strings, sharded
// PUB/SUB on a Redis Cluster; the adapter puts a namespace's events in one stream, so
// streamCount only matters with several namespaces).
//   events from the client: "sub" (channel, ack), "pub" (channel, data, ack)
//   events to the client:   "m" (data[, recovery offset])
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { onShutdown, options, redisClient } from "./common.mjs";

const opts = options();
const redis = redisClient(opts);
const http = createServer((req, res) => {
  res.writeHead(req.url === "/ready" ? 200 : 404).end();
});
const io = new Server(http, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true },
  adapter: createAdapter(redis, { streamCount: opts.cluster ? 3 : 1, useShardedPubSub: opts.cluster, onlyPlaintext: true }),
});
io.on("connection", (socket) => {
  socket.on("sub", (channel, ack) => {
    socket.join(channel);
    if (typeof ack === "function") ack();
  });
  socket.on("pub", (channel, data, ack) => {
    io.to(channel).emit("m", data);
    if (typeof ack === "function") ack();
  });
});
http.listen(opts.port, "127.0.0.1");
// Closing the sockets persists each one's session for connection state recovery ("server
// shutting down" is a recoverable reason) with a Redis SET that is not awaited. A PING on
// every node's connection after them returns once they are done, so the sessions are in
// Redis before the process exits (without it a third of them were lost on a Cluster).
onShutdown(async () => {
  await new Promise((resolve) => io.close(() => resolve()));
  const nodes = opts.cluster ? redis.nodes("master") : [redis];
  await Promise.all(nodes.map((node) => node.ping().catch(() => {})));
});
