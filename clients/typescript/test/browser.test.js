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

async function chatLines(page) {
  return page.$$eval("#log p", (ps) => ps.map((p) => p.firstChild.textContent));
}

test("two browsers on different sidecars chat and share checkboxes across a drain", { timeout: 240_000 }, async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const local = await startLocal();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  try {
    const [s0, s1] = (await local.fleet()).sidecars;
    const ada = await (await browser.newContext()).newPage();
    const bob = await (await browser.newContext()).newPage();
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
  } finally {
    await browser.close();
    const output = await local.stop();
    assert.ok(output.includes("stopped"), output);
  }
});
