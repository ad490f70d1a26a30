// The client against real sidecars and a real Redis: resume after a drain, duplicates
// dropped, an exact gap, and a refused token.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SocketFleetClient, backoffDelay, isNewer } from "../dist/index.js";
import { startFleet, http, sleep } from "./harness.js";

const seq = (offset) => Number(offset.split("-")[1]);

async function publishN(sidecar, channel, from, to) {
  for (let i = from; i <= to; i++) {
    const r = await http(sidecar.api, "POST", "/publish", { channel, data: { i } });
    assert.equal(r.status, 200, r.body);
  }
}

async function waitFor(what, ms, ok) {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

test("backoff has full jitter under an exponential cap, offsets compare numerically", () => {
  assert.equal(backoffDelay(0, 250, 10_000, () => 0.999), 249);
  assert.equal(backoffDelay(3, 250, 10_000, () => 0.5), 1000);
  assert.equal(backoffDelay(20, 250, 10_000, () => 0.999), 9990);
  assert.equal(backoffDelay(5, 250, 10_000, () => 0), 0);
  assert.ok(isNewer("10-2", "9-7") && isNewer("10-10", "10-9") && !isNewer("10-9", "10-10"));
});

test("a drained sidecar's client resumes on another one without losing or repeating a message", async () => {
  const fleet = await startFleet(2);
  try {
    const [a, b] = fleet.sidecars;
    const client = new SocketFleetClient([a.url, b.url], { token: () => fleet.token("ada"), initialDelayMs: 50 });
    const got = [];
    client.on("message", (m) => got.push(seq(m.offset)));
    const nodes = [];
    client.on("welcome", (w) => nodes.push([w.node, w.resumed]));
    await client.connect();
    await client.subscribe("room:drain");
    let published = 0;
    let stop = false;
    const publisher = (async () => {
      while (!stop && published < 400) {
        await publishN(b, "room:drain", published + 1, published + 1);
        published += 1;
      }
    })();
    await sleep(200);
    await http(a.admin, "POST", "/drain");
    await waitFor("the resume", 10_000, () => nodes.length >= 2);
    await sleep(300);
    stop = true;
    await publisher;
    await waitFor("every message", 10_000, () => got.length >= published);
    assert.deepEqual(nodes.slice(0, 2), [["sidecar-0", false], ["sidecar-1", true]]);
    assert.deepEqual(got, Array.from({ length: published }, (_, i) => i + 1), "each once, in order");
    assert.equal(client.session !== null, true);
    client.close();
  } finally {
    await fleet.stop();
  }
});

test("messages the client already has are dropped when the server resends them", async () => {
  const fleet = await startFleet(1);
  try {
    const [a] = fleet.sidecars;
    const first = new SocketFleetClient(a.url, { token: () => fleet.token("bob") });
    const seen = [];
    first.on("message", (m) => seen.push({ offset: m.offset, epoch: m.epoch }));
    await first.connect();
    await first.subscribe("room:dup");
    await publishN(a, "room:dup", 1, 10);
    await waitFor("10 messages", 5000, () => seen.length === 10);
    const at5 = seen[4];
    const kept = first.position("room:dup");
    first.close();
    // A client that kept its positions asks for history from 5: 6..10 come again, only 11.. are new.
    const again = new SocketFleetClient(a.url, { token: () => fleet.token("bob"), positions: { "room:dup": kept } });
    const got = [];
    const dups = [];
    again.on("message", (m) => got.push(seq(m.offset)));
    again.on("duplicate", (d) => dups.push(seq(d.offset)));
    await again.subscribe("room:dup", at5);
    await publishN(a, "room:dup", 11, 12);
    await waitFor("11 and 12", 5000, () => got.length >= 2);
    assert.deepEqual(dups, [6, 7, 8, 9, 10]);
    assert.deepEqual(got, [11, 12]);
    again.close();
  } finally {
    await fleet.stop();
  }
});

test("a client back after the history window hears of the exact gap", async () => {
  const fleet = await startFleet(1, "  channels:\n    historySize: 10\n");
  try {
    const [a] = fleet.sidecars;
    const c = new SocketFleetClient(a.url, { token: () => fleet.token("cy") });
    await c.subscribe("room:gap");
    await publishN(a, "room:gap", 1, 3);
    await waitFor("3 messages", 5000, () => seq(c.position("room:gap")?.offset ?? "0-0") === 3);
    const kept = c.position("room:gap");
    c.close();
    await publishN(a, "room:gap", 4, 28);
    const back = new SocketFleetClient(a.url, { token: () => fleet.token("cy"), positions: { "room:gap": kept } });
    const gaps = [];
    const got = [];
    back.on("gap", (g) => gaps.push(g));
    back.on("message", (m) => got.push(seq(m.offset)));
    await back.subscribe("room:gap");
    await waitFor("the retained history", 5000, () => got.length >= 10);
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0].missed, 15, "seq 4..18 are gone: history keeps 19..28");
    assert.equal(seq(gaps[0].from), 3);
    assert.equal(seq(gaps[0].to), 19);
    assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => 19 + i));
    back.close();
  } finally {
    await fleet.stop();
  }
});

test("a bad token is refused and the client says why", async () => {
  const fleet = await startFleet(1);
  try {
    const c = new SocketFleetClient(fleet.sidecars[0].url, { token: "not-a-jwt", maxAttempts: 0 });
    await assert.rejects(c.connect(), (e) => e.code === "connect_failed");
    assert.equal(c.state, "closed");
  } finally {
    await fleet.stop();
  }
});
