// Shared by the demo pages: a client for this page's user (`?user=`), through the local
// balancer's /ws (optionally pinned to a sidecar with `?via=`), with a demo token when the
// fleet hands them out.
import { SocketFleetClient } from "./socketfleet-client.js";

export async function pageClient() {
  const params = new URLSearchParams(location.search);
  const user = params.get("user") ?? "guest" + Math.floor(Math.random() * 1000);
  const fleet = await (await fetch("/fleet.json")).json();
  const wsUrl = `ws://${location.host}/ws` + (params.get("via") ? `?via=${params.get("via")}` : "");
  const client = new SocketFleetClient(wsUrl, {
    token: fleet.tokens ? async () => (await fetch(`/token?user=${encodeURIComponent(user)}`)).text() : undefined,
  });
  client.on("welcome", (w) => {
    document.getElementById("status").className = "open";
    document.getElementById("status").textContent = `connected as ${user} to ${w.node}${w.resumed ? " (resumed)" : ""}`;
  });
  // The state at a glance on every page: amber while (re)connecting, red when closed.
  client.on("state", (s) => {
    const status = document.getElementById("status");
    status.className = s;
    if (s !== "open") status.textContent = s === "closed" ? "disconnected" : s + "…";
  });
  window.socketfleet = { client, user };
  return { client, user, params };
}
