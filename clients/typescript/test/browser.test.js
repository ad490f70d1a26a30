// The demo pages in Debian's Chromium (playwright-core, no downloaded browser), served by
// `socketfleet local`: two browser contexts on different sidecars see each other's chat
// messages and checkbox changes; a sidecar is drained mid-test and the pages go on without
// a lost or duplicated message. Screenshots go to target/browser-artifacts/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { http, sleep, startLocal as startFleetFile } from "./harness.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../../..");
const CHROMIUM = process.env.SF_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(root, "target/browser-artifacts");

/** `socketfleet local` with the demo pages and this build of the client. */
async function startLocal() {
  const www = mkdtempSync(join(tmpdir(), "sf-www-"));
  for (const f of readdirSync(join(root, "demo"))) {
    if (f.endsWith(".html") || (f.endsWith(".js") && f !== "socketfleet-client.js")) cpSync(join(root, "demo", f), join(www, f));
  }
  cpSync(join(here, "../dist/index.js"), join(www, "socketfleet-client.js"));
  return startFleetFile(join(here, "fixtures/browser-fleet.yaml"), ["--www", www], () => rmSync(www, { recursive: true, force: true }));
}

/** A page that records its console errors and uncaught exceptions (none are expected). */
async function newPage(browser, errors) {
  const page = await (await browser.newContext()).newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(`${page.url()}: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  return page;
}

/** Runs `body(local, browser)` against a fresh `socketfleet local` with the demo pages and
 * Debian's Chromium, closes both however it ends, and returns what local mode printed. */
async function inBrowser(body) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const local = await startLocal();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  try {
    await body(local, browser);
  } finally {
    await browser.close();
    await local.stop();
  }
  return local.output();
}

async function chatLines(page) {
  return page.$$eval("#log p", (ps) => ps.map((p) => p.firstChild.textContent));
}

test("two browsers on different sidecars chat and share checkboxes across a drain", { timeout: 240_000 }, async () => {
  const output = await inBrowser(async (local, browser) => {
    const [s0, s1] = (await local.fleet()).sidecars;
    const errors = [];
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    await ada.goto(`${local.base}/?user=ada&via=${s0.name}`);
    await bob.goto(`${local.base}/?user=bob&via=${s1.name}`);
    for (const [page, node] of [[ada, s0.name], [bob, s1.name]]) {
      await page.waitForFunction((n) => document.getElementById("status").textContent.includes(n), node, { timeout: 30_000 });
    }
    await ada.waitForFunction(() => document.getElementById("members").textContent.includes("bob"), null, { timeout: 15_000 });

    const expected = [];
    async function say(page, who, text) {
      await page.fill("#text", text);
      await page.press("#text", "Enter");
      expected.push(`${who}: ${text}`);
    }
    // Typing shows on the other page and vanishes after 3 s.
    await ada.type("#text", "h");
    await bob.waitForFunction(() => document.getElementById("typing").textContent.includes("ada is typing"), null, { timeout: 10_000 });
    await ada.fill("#text", "");
    await bob.waitForFunction(() => document.getElementById("typing").textContent === "", null, { timeout: 10_000 });

    for (let i = 0; i < 5; i++) {
      await say(ada, "ada", `before ${i}`);
      await say(bob, "bob", `before ${i}`);
    }
    await ada.screenshot({ path: join(ARTIFACTS, "chat-ada-before-drain.png") });

    // Drain ada's sidecar mid-conversation: ada's page must move to the other one.
    await http(Number(new URL(s0.admin).port), "POST", "/drain");
    for (let i = 0; i < 5; i++) {
      await say(bob, "bob", `during ${i}`);
      await sleep(200);
    }
    await ada.waitForFunction((n) => {
      const s = document.getElementById("status").textContent;
      return s.includes("resumed") && !s.includes(n);
    }, s0.name, { timeout: 30_000 });
    for (let i = 0; i < 5; i++) {
      await say(ada, "ada", `after ${i}`);
      await say(bob, "bob", `after ${i}`);
    }
    for (const page of [ada, bob]) {
      await page.waitForFunction((n) => document.querySelectorAll("#log p").length >= n, expected.length, { timeout: 20_000 });
    }
    await sleep(500);
    const [adaLines, bobLines] = [await chatLines(ada), await chatLines(bob)];
    // Each page saw every message once. Per sender the order is the sending order; the
    // interleaving of the two senders is the channel's offset order, the same on both.
    assert.deepEqual(adaLines, bobLines, "both pages show the same messages in the same order");
    assert.deepEqual([...adaLines].sort(), [...expected].sort(), "every message exactly once");
    for (const who of ["ada", "bob"]) {
      assert.deepEqual(adaLines.filter((l) => l.startsWith(who)), expected.filter((l) => l.startsWith(who)), `${who}'s messages in order`);
    }
    await ada.screenshot({ path: join(ARTIFACTS, "chat-ada-after-drain.png") });
    await bob.screenshot({ path: join(ARTIFACTS, "chat-bob-after-drain.png") });

    // The state at a glance: the status badge is green (class "open") when connected.
    assert.equal(await ada.getAttribute("#status", "class"), "open");
    // Offsets only on demand.
    assert.equal(await ada.isVisible("#log p .meta"), false, "offsets hidden by default");
    await ada.check("#show-offsets");
    assert.equal(await ada.isVisible("#log p .meta"), true, "offsets shown when asked");
    await ada.screenshot({ path: join(ARTIFACTS, "chat-ada-offsets.png") });
    // Presence follows the room shown: ada moves to #rust and leaves the lobby's list.
    await ada.click("text=#rust");
    await bob.waitForFunction(() => !document.getElementById("members").textContent.includes("ada"), null, { timeout: 15_000 });
    await ada.waitForFunction(() => document.getElementById("members").textContent.trim() === "ada", null, { timeout: 15_000 });
    await bob.screenshot({ path: join(ARTIFACTS, "chat-bob-after-ada-left.png") });

    // Shared checkboxes: a click on one page shows on the other.
    await ada.goto(`${local.base}/checkboxes.html?user=ada`);
    await bob.goto(`${local.base}/checkboxes.html?user=bob&via=${s1.name}`);
    for (const page of [ada, bob]) await page.waitForFunction(() => document.getElementById("status").textContent.includes("connected"), null, { timeout: 30_000 });
    await ada.click('input[data-cell="5"]');
    await ada.click('input[data-cell="42"]');
    await bob.waitForFunction(() => document.querySelector('input[data-cell="42"]').checked && document.querySelector('input[data-cell="5"]').checked, null, { timeout: 10_000 });
    await bob.click('input[data-cell="5"]');
    await ada.waitForFunction(() => !document.querySelector('input[data-cell="5"]').checked, null, { timeout: 10_000 });
    // Both pages settle on one checked cell (bob's own echo may still be on its way).
    for (const page of [ada, bob]) {
      await page.waitForFunction(() => document.getElementById("count").textContent === "1", null, { timeout: 10_000 }).catch(() => {});
      assert.equal(await page.textContent("#count"), "1");
    }
    await bob.screenshot({ path: join(ARTIFACTS, "checkboxes-bob.png") });
    assert.deepEqual(errors, [], "no console errors on the pages");
  });
  assert.ok(output.includes("stopped"), output);
});

test("`-` in the terminal drains the sidecar holding the most tabs; both move, nothing missed", { timeout: 180_000 }, async () => {
  await inBrowser(async (local, browser) => {
    const [s0, s1] = (await local.fleet()).sidecars;
    const errors = [];
    const ada = await newPage(browser, errors);
    const bob = await newPage(browser, errors);
    const cy = await newPage(browser, errors);
    // Two tabs on sidecar-1, one on sidecar-0: `-` (the README's walk-through) takes sidecar-1.
    for (const [page, who, s] of [[ada, "ada", s1], [bob, "bob", s1], [cy, "cy", s0]]) {
      await page.goto(`${local.base}/?user=${who}&via=${s.name}`);
      await page.waitForFunction((n) => document.getElementById("status").textContent.includes(n), s.name, { timeout: 30_000 });
    }
    await ada.fill("#text", "before");
    await ada.press("#text", "Enter");
    local.proc.stdin.write("-\n");
    for (const page of [ada, bob]) {
      await page.waitForFunction((n) => {
        const s = document.getElementById("status").textContent;
        return s.includes("resumed") && !s.includes(n);
      }, s1.name, { timeout: 45_000 });
    }
    await bob.fill("#text", "after");
    await bob.press("#text", "Enter");
    for (const page of [ada, bob, cy]) {
      await page.waitForFunction(() => document.querySelectorAll("#log p").length >= 2, null, { timeout: 20_000 });
    }
    await sleep(500);
    for (const page of [ada, bob, cy]) assert.deepEqual(await chatLines(page), ["ada: before", "bob: after"]);
    assert.ok((await cy.textContent("#status")).includes(s0.name), "the third tab stayed where it was");
    await ada.screenshot({ path: join(ARTIFACTS, "chat-ada-after-terminal-drain.png") });
    assert.deepEqual(errors, [], "no console errors on the pages");
    // The terminal says when the drain is over, with the clients it moved.
    const done = new RegExp(`${s1.name}: its 2 clients moved in [0-9.]+ s; it has stopped`);
    for (let i = 0; i < 100 && !done.test(local.output()); i++) await sleep(200);
    assert.match(local.output(), done);
  });
});

test("a message typed while the fleet does not answer waits as sending and is stored once when it answers again", { timeout: 180_000 }, async () => {
  await inBrowser(async (local, browser) => {
    const pids = (await local.fleet()).sidecars.map((s) => s.pid);
    try {
      const ada = await (await browser.newContext()).newPage();
      await ada.goto(`${local.base}/?user=ada`);
      await ada.waitForFunction(() => document.getElementById("status").className === "open", null, { timeout: 30_000 });
      // Every sidecar frozen: nothing answers, no connection closes.
      for (const pid of pids) process.kill(pid, "SIGSTOP");
      await ada.fill("#text", "while frozen");
      await ada.press("#text", "Enter");
      await ada.waitForFunction(() => document.getElementById("pending").textContent.includes("ada: while frozen (sending…)"), null, { timeout: 5_000 });
      assert.equal(await ada.inputValue("#text"), "", "the input is free for the next message");
      await sleep(4000);
      assert.match(await ada.textContent("#pending"), /while frozen \(sending…\)/, "still waiting, not dropped");
      await ada.screenshot({ path: join(ARTIFACTS, "chat-ada-sending-while-frozen.png") });
      for (const pid of pids) process.kill(pid, "SIGCONT");
      await ada.waitForFunction(() => document.getElementById("pending").textContent === "", null, { timeout: 60_000 });
      await ada.waitForFunction(() => document.querySelectorAll("#log p").length >= 1, null, { timeout: 20_000 });
      await sleep(1000);
      assert.deepEqual(await chatLines(ada), ["ada: while frozen"], "stored and shown exactly once");
      await ada.screenshot({ path: join(ARTIFACTS, "chat-ada-sent-after-frozen.png") });
    } finally {
      for (const pid of pids) {
        try { process.kill(pid, "SIGCONT"); } catch {}
      }
    }
  });
});
