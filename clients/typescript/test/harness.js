// Real components for the client tests: a redis-server and sidecar processes on free
// loopback ports (the sidecar binary from `cargo build`), stopped when the test ends.
import { spawn } from "node:child_process";
import { createServer, connect } from "node:net";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
export const SIDECAR = process.env.SF_SIDECAR_BIN ?? join(root, "target/debug/socketfleet-sidecar");
export const SECRET = "client-test-secret-client-test-secret";

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function http(port, method, path, body) {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers: { "content-type": "application/json" } }, (res) => {
      let data = "";
      res.on("data", (c) => (data += c));
      res.on("end", () => resolve({ status: res.statusCode, body: data }));
    });
    req.on("error", () => resolve({ status: 0, body: "" }));
    if (body !== undefined) req.write(typeof body === "string" ? body : JSON.stringify(body));
    req.end();
  });
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

async function until(what, ms, ok) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A redis-server and `n` sidecars with `env`; `stop()` ends all of them. */
export async function startFleet(n, env = {}) {
  const dir = mkdtempSync(join(tmpdir(), "sf-client-"));
  const procs = [];
  const redisPort = await freePort();
  procs.push(spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--dir", dir], { stdio: "ignore" }));
  await until("redis", 10_000, () => tcpOpen(redisPort));
  const sidecars = [];
  for (let i = 0; i < n; i++) {
    const [ws, admin, api] = [await freePort(), await freePort(), await freePort()];
    const child = spawn(SIDECAR, [], {
      stdio: "ignore",
      env: {
        SF_AUTH: "hs256", SF_JWT_SECRET: SECRET, SF_REDIS_ADDRS: `127.0.0.1:${redisPort}`,
        SF_WS_ADDR: `127.0.0.1:${ws}`, SF_ADMIN_ADDR: `127.0.0.1:${admin}`, SF_APP_API_ADDR: `127.0.0.1:${api}`,
        SF_NODE_NAME: `sidecar-${i}`, SF_RESUME_KEY: "client-test-resume-key-client-test-resume-key",
        SF_DRAIN_SPREAD: "500ms", SF_DRAIN_ACCEPT_GRACE: "100ms", SF_DRAIN_TIMEOUT: "10s", SF_LOG: "warn", ...env,
      },
    });
    procs.push(child);
    sidecars.push({ name: `sidecar-${i}`, url: `ws://127.0.0.1:${ws}/ws`, admin, api, child });
  }
  for (const s of sidecars) await until(`${s.name} ready`, 20_000, async () => (await http(s.admin, "GET", "/ready")).status === 200);
  return {
    sidecars,
    async stop() {
      for (const p of procs) p.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An HS256 JWT for `user`, any channel. */
export async function token(user) {
  const { createHmac } = await import("node:crypto");
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, exp: Math.floor(Date.now() / 1000) + 3600, channels: { subscribe: ["*"], publish: ["*"] } })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}
