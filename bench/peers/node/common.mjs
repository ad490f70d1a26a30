// Shared by the Node peers: command-line options, the Redis client (one ioredis client for
// a standalone server or a Cluster for seeds), graceful shutdown on SIGTERM.
import { Cluster, Redis } from "ioredis";

/** `--port 8000 --redis 127.0.0.1:7000,127.0.0.1:7001 --cluster`; the Redis password, if
 * any, in `REDIS_PASSWORD`. */
export function options() {
  const args = process.argv.slice(2);
  const get = (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : fallback;
  };
  return {
    port: Number(get("port", "8000")),
    redis: get("redis", "127.0.0.1:6379").split(",").map((a) => {
      const [host, port] = a.split(":");
      return { host, port: Number(port) };
    }),
    cluster: args.includes("--cluster"),
  };
}

/** A Redis client: one ioredis client for a standalone server, a Cluster for seeds. Errors
 * are logged, not thrown: ioredis reconnects by itself.
 *
 * A `subscriber` for classic SUBSCRIBE is a plain connection to the first address even on
 * a Cluster: classic PUBLISH reaches every node, so any node serves the subscription (the
 * tutorials' setup). ioredis' Cluster subscriber forces its INFO ready check, which a
 * connection that already sent SUBSCRIBE refuses, and the rejection crashed the process
 * under 10,000 clients; a plain client skips the check and resubscribes after reconnecting. */
export function redisClient(opts, { subscriber = false } = {}) {
  // From the environment, not an argument: `ps` shows arguments.
  const auth = process.env.REDIS_PASSWORD ? { password: process.env.REDIS_PASSWORD } : {};
  const client = subscriber
    ? new Redis({ ...opts.redis[0], ...auth, enableReadyCheck: false })
    : opts.cluster
      ? new Cluster(opts.redis, { redisOptions: auth })
      : new Redis({ ...opts.redis[0], ...auth });
  client.on("error", (err) => console.error(`redis: ${err.message}`));
  return client;
}

/** Runs `close` on SIGTERM/SIGINT, then exits; a stuck close is cut off after 10 s. */
export function onShutdown(close) {
  const stop = async () => {
    setTimeout(() => process.exit(0), 10_000).unref();
    try {
      await close();
    } finally {
      process.exit(0);
    }
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
