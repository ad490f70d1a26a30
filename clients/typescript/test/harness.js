// Real components for the client and browser tests: `socketfleet local` (the binary from
// `cargo build`) runs the fleet a test describes — its Redis, its sidecars, the balancer —
// on loopback ports it binds itself, and is stopped (SIGTERM: drain, then stop) when the
// test ends. Nothing here starts a Redis or a sidecar of its own.
import { spawn } from "node:child_process";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
export const CLI = process.env.SF_CLI_BIN ?? join(root, "target/debug/socketfleet");

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

export async function until(what, ms, ok) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const portOf = (url) => Number(new URL(url).port);

/** A fleet file for `socketfleet local`: a Redis primary and replica under three Sentinels
 * (the quickest layout to start), `sidecars` sidecars, HS256 with
 * a generated secret, a quick drain; `spec` (YAML lines under `spec:`) adds or overrides. */
export function fleetYaml(sidecars, spec = "") {
  return `apiVersion: socketfleet.io/v1alpha1
kind: SocketFleet
metadata:
  name: client-test
spec:
  gateway:
    replicas: { min: ${sidecars}, max: ${sidecars} }
  redis:
    mode: sentinel
    replicasPerShard: 1
  auth:
    mode: hs256
  drain:
    timeout: 10s
    reconnectSpread: 500ms
${spec}`;
}

/** Runs `socketfleet local` on `file` (`args` added) until it says the fleet is running;
 * `cleanup` runs once it has stopped (or failed to start). */
export async function startLocal(file, args = [], cleanup = () => {}) {
  try {
    return await runLocal(file, args, cleanup);
  } catch (e) {
    cleanup();
    throw e;
  }
}

async function runLocal(file, args, cleanup) {
  const proc = spawn(CLI, ["local", file, "--port", "0", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  proc.stdout.on("data", (d) => (output += d));
  proc.stderr.on("data", (d) => (output += d));
  let port;
  await until("socketfleet local", 90_000, async () => {
    if (proc.exitCode !== null) throw new Error(`socketfleet local exited ${proc.exitCode}:\n${output}`);
    port = Number(output.match(/SocketFleet is running locally: +http:\/\/127\.0\.0\.1:(\d+)\//)?.[1] ?? 0);
    return port > 0;
  });
  const fleet = JSON.parse((await http(port, "GET", "/fleet.json")).body);
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    proc,
    /** Each sidecar: name, url (WebSocket), admin and api (ports). */
    sidecars: fleet.sidecars.map((s) => ({ name: s.name, url: s.ws, admin: portOf(s.admin), api: portOf(s.api) })),
    async fleet() {
      return JSON.parse((await http(port, "GET", "/fleet.json")).body);
    },
    /** Everything it has printed so far. */
    output: () => output,
    /** An HS256 token for `user` from the fleet's generated secret. */
    async token(user) {
      const r = await http(port, "GET", `/token?user=${encodeURIComponent(user)}`);
      if (r.status !== 200) throw new Error(`/token: ${r.status} ${r.body}`);
      return r.body;
    },
    /** SIGTERM (drain, then stop) and wait; returns everything it printed. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      try {
        await until("socketfleet local to stop", 45_000, async () => proc.exitCode !== null || proc.signalCode !== null);
      } catch (e) {
        proc.kill("SIGKILL");
        throw new Error(`${e.message}; its output:\n${output}`);
      } finally {
        cleanup();
      }
      return output;
    },
  };
}

/** `socketfleet local` with `n` sidecars on a fleet from {@link fleetYaml}. */
export async function startFleet(n, spec = "") {
  const dir = mkdtempSync(join(tmpdir(), "sf-client-"));
  const file = join(dir, "fleet.yaml");
  writeFileSync(file, fleetYaml(n, spec));
  return startLocal(file, [], () => rmSync(dir, { recursive: true, force: true }));
}
