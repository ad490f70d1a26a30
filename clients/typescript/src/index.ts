// @socketfleet/client: the SocketFleet wire protocol v1 (docs/protocol.md) for browsers and
// Node 20+. It keeps the delivery contract on the client side: offsets per channel,
// duplicates dropped, an exact `gap` event when history no longer reaches back, and
// reconnects that resume the session (resume token + offsets) on any gateway pod.
// No runtime dependencies in the browser; in Node without a global WebSocket it loads `ws`.

/** A position in a channel: the last offset received and its epoch. */
export interface Position {
  offset: string;
  epoch: string;
}

export interface Gap {
  channel: string;
  /** Everything strictly after `from` and strictly before `to` is lost. */
  from: string;
  to: string;
  /** Exact count when known (same epoch). */
  missed?: number;
}

export interface Message<T = unknown> {
  channel: string;
  offset: string;
  epoch: string;
  data: T;
}

export interface Welcome {
  session: string;
  node: string;
  resumed: boolean;
  subscriptions?: string[];
  state?: unknown;
}

export interface PresenceMember {
  client: string;
  user: string;
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** Events and their payloads. */
export interface ClientEvents {
  welcome: Welcome;
  message: Message;
  subscribed: { channel: string; offset: string; epoch: string; recovered: boolean; gap: Gap | null };
  gap: Gap;
  join: { channel: string; client: string; user: string };
  leave: { channel: string; client: string; user: string };
  ephemeral: { channel: string; key: string; from: string; data: unknown; ttlMs: number };
  state: ConnectionState;
  /** A server error without a request; `channel` when it ended that subscription. */
  error: { code: string; message: string; channel?: string };
  /** The token expires soon (Unix seconds); the server closes the connection at `closesAt`. */
  expiring: { expiresAt: number; closesAt: number };
  /** A message the client already had (a resend), dropped. */
  duplicate: { channel: string; offset: string };
}

type Listener<K extends keyof ClientEvents> = (event: ClientEvents[K]) => void;

/** A protocol error answered by the server. */
export class SocketFleetError extends Error {
  constructor(
    public readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "SocketFleetError";
  }
}

export interface ClientOptions {
  /** A JWT, or a function returning one (called on every connect, so it can refresh). */
  token?: string | (() => string | Promise<string>);
  /** First reconnect delay ceiling; doubles per attempt up to `maxDelayMs` (full jitter). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
  /** A WebSocket implementation (defaults to the global one, else the `ws` package). */
  WebSocket?: WebSocketLike;
  /** How long a request waits for its answer. */
  requestTimeoutMs?: number;
  /** How many times a publish whose outcome is unknown is sent again with its publish id (3). */
  publishRetries?: number;
  /** Positions kept from an earlier run (e.g. localStorage): nothing at or before them is delivered again. */
  positions?: Record<string, Position>;
}

/** The subset of the WebSocket API this client uses. */
export interface WebSocketLike {
  new (url: string): SocketLike;
}

interface SocketLike {
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

interface Pending {
  resolve: (frame: Record<string, unknown>) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  /** The connection it was sent on: only that one closing leaves it unanswered. */
  socket: SocketLike;
}

async function defaultWebSocket(): Promise<WebSocketLike> {
  const g = globalThis as { WebSocket?: WebSocketLike };
  if (g.WebSocket) return g.WebSocket;
  // Node 20 has no global WebSocket; `ws` is an optional peer dependency there.
  const mod = (await import("ws")) as unknown as { default: WebSocketLike };
  return mod.default;
}

/** The delay before reconnect attempt `attempt` (0-based): full jitter over an exponential cap. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/** A publish id: random, unique enough within a channel's history window. */
function randomPid(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** Whether `offset` is newer than `last` ("<ms>-<seq>" compared numerically). */
export function isNewer(offset: string, last: string): boolean {
  const [am = 0, as = 0] = offset.split("-").map(Number);
  const [bm = 0, bs = 0] = last.split("-").map(Number);
  return am > bm || (am === bm && as > bs);
}

export class SocketFleetClient {
  private socket: SocketLike | null = null;
  private listeners = new Map<keyof ClientEvents, Set<(e: never) => void>>();
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private positions = new Map<string, Position>();
  private subscriptions = new Set<string>();
  private resumeToken: string | null = null;
  private attempts = 0;
  private closedByUser = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private opened: Promise<Welcome> | null = null;
  private connects = 0;
  /** The session id (stable across resumes). */
  session: string | null = null;
  state: ConnectionState = "closed";

  private readonly urls: string[];

  /** `url`: one gateway, or several to rotate through on reconnect. */
  constructor(
    url: string | string[],
    private readonly options: ClientOptions = {},
  ) {
    this.urls = Array.isArray(url) ? url : [url];
    for (const [ch, p] of Object.entries(options.positions ?? {})) this.positions.set(ch, p);
  }

  on<K extends keyof ClientEvents>(event: K, listener: Listener<K>): () => void {
    const set = this.listeners.get(event) ?? new Set();
    set.add(listener as (e: never) => void);
    this.listeners.set(event, set);
    return () => set.delete(listener as (e: never) => void);
  }

  private emit<K extends keyof ClientEvents>(event: K, payload: ClientEvents[K]): void {
    for (const l of this.listeners.get(event) ?? []) (l as Listener<K>)(payload);
  }

  private setState(s: ConnectionState): void {
    if (this.state !== s) {
      this.state = s;
      this.emit("state", s);
    }
  }

  /** The last position received per channel. */
  position(channel: string): Position | undefined {
    return this.positions.get(channel);
  }

  /** Connects (or reconnects) and resolves with the `welcome`. */
  connect(): Promise<Welcome> {
    this.closedByUser = false;
    if (!this.opened) this.opened = this.open();
    return this.opened;
  }

  private async buildUrl(): Promise<string> {
    const u = new URL(this.urls[this.connects++ % this.urls.length] ?? "");
    const t = this.options.token;
    const token = typeof t === "function" ? await t() : t;
    if (token) u.searchParams.set("token", token);
    if (this.resumeToken) {
      u.searchParams.set("resume", this.resumeToken);
      const since: Record<string, Position> = {};
      for (const ch of this.subscriptions) {
        const p = this.positions.get(ch);
        if (p) since[ch] = p;
      }
      if (Object.keys(since).length > 0) u.searchParams.set("since", JSON.stringify(since));
    }
    return u.toString();
  }

  private async open(): Promise<Welcome> {
    this.setState(this.resumeToken ? "reconnecting" : "connecting");
    const WS = this.options.WebSocket ?? (await defaultWebSocket());
    const url = await this.buildUrl();
    return new Promise<Welcome>((resolve, reject) => {
      const socket = new WS(url);
      this.socket = socket;
      let welcomed = false;
      socket.onmessage = (ev) => {
        const frame = JSON.parse(String(ev.data)) as Record<string, unknown>;
        if (!welcomed && frame.type === "welcome") {
          welcomed = true;
          this.attempts = 0;
          const w = frame as unknown as Welcome & { resumeToken: string };
          this.resumeToken = w.resumeToken;
          this.session = w.session;
          // A resumed session restores what its welcome lists. A subscription this client
          // had that is not among it (the old server never got to record it, or Redis lost
          // the session) is subscribed again, from the position this client has.
          const restored = new Set(w.subscriptions ?? []);
          const lost = w.resumed ? [...this.subscriptions].filter((ch) => !restored.has(ch)) : [];
          if (!w.resumed) this.subscriptions.clear();
          for (const ch of restored) this.subscriptions.add(ch);
          for (const ch of lost) this.subscriptions.delete(ch);
          this.setState("open");
          this.emit("welcome", w);
          resolve(w);
          for (const ch of lost) this.subscribeAgain(ch);
          return;
        }
        this.handle(frame);
      };
      socket.onclose = (ev) => {
        for (const [id, p] of this.pending) {
          if (p.socket !== socket) continue;
          clearTimeout(p.timer);
          this.pending.delete(id);
          p.reject(new SocketFleetError("disconnected", "the connection closed before the answer"));
        }
        // A connection we already switched away from (after a drain): nothing else changes.
        if (this.socket !== socket) return;
        this.socket = null;
        this.opened = null;
        if (!welcomed) reject(new SocketFleetError("connect_failed", `could not connect (close ${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`));
        if (this.closedByUser) {
          this.setState("closed");
        } else {
          this.scheduleReconnect(null);
        }
      };
      socket.onerror = () => {
        // onclose follows with the details.
      };
    });
  }

  /** Subscribes again to a channel the server dropped, from the position this client has. */
  private subscribeAgain(channel: string): void {
    this.subscribe(channel).catch((e: unknown) => this.reportFailure(e, "subscribe_failed", `subscribing again to ${channel}`));
  }

  /** A failure of something the client did by itself, as an `error` event. */
  private reportFailure(e: unknown, fallbackCode: string, what: string): void {
    this.emit("error", { code: e instanceof SocketFleetError ? e.code : fallbackCode, message: `${what}: ${String(e)}` });
  }

  /** Opens a new connection after `delayMs`, then closes the current one. */
  private switchAfter(delayMs: number): void {
    if (this.reconnectTimer || this.closedByUser) return;
    const old = this.socket;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.opened = null;
      this.connect()
        .then(() => {
          if (old && old !== this.socket) old.close(1000, "switched");
        })
        .catch(() => this.scheduleReconnect(null));
    }, delayMs);
  }

  private scheduleReconnect(delayMs: number | null): void {
    if (this.reconnectTimer || this.closedByUser) return;
    const max = this.options.maxAttempts;
    if (max !== undefined && this.attempts >= max) {
      this.setState("closed");
      return;
    }
    const delay = delayMs ?? backoffDelay(this.attempts, this.options.initialDelayMs ?? 250, this.options.maxDelayMs ?? 10_000);
    this.attempts += 1;
    this.setState("reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect().catch(() => this.scheduleReconnect(null));
    }, delay);
  }

  private handle(frame: Record<string, unknown>): void {
    const id = typeof frame.id === "number" ? frame.id : undefined;
    if (id !== undefined && this.pending.has(id)) {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (p) {
        clearTimeout(p.timer);
        if (frame.type === "error") p.reject(new SocketFleetError(String(frame.code), String(frame.message)));
        else p.resolve(frame);
      }
      // A `subscribed` answer also moves the channel's position.
      if (frame.type !== "subscribed") return;
    }
    switch (frame.type) {
      case "message": {
        const m = frame as unknown as Message;
        const last = this.positions.get(m.channel);
        if (last && last.epoch === m.epoch && !isNewer(m.offset, last.offset)) {
          this.emit("duplicate", { channel: m.channel, offset: m.offset });
          return;
        }
        this.positions.set(m.channel, { offset: m.offset, epoch: m.epoch });
        this.emit("message", m);
        return;
      }
      case "subscribed": {
        const s = frame as unknown as ClientEvents["subscribed"];
        this.subscriptions.add(s.channel);
        const last = this.positions.get(s.channel);
        if (!last) {
          // A fresh subscription: what follows is newer than the channel's current offset.
          this.positions.set(s.channel, { offset: s.offset, epoch: s.epoch });
        } else if (last.epoch !== s.epoch) {
          // The stream was recreated: everything of the new epoch is news.
          this.positions.set(s.channel, { offset: "0-0", epoch: s.epoch });
        } else if (!s.recovered && !s.gap && isNewer(last.offset, s.offset)) {
          // Our position is past the stream's end (history rewound by a failover that
          // kept the epoch): the server starts us at its end; follow it, or its next
          // publications would look old.
          this.positions.set(s.channel, { offset: s.offset, epoch: s.epoch });
        }
        if (s.gap) this.emit("gap", { ...s.gap, channel: s.channel });
        this.emit("subscribed", s);
        return;
      }
      case "gap": {
        const g = frame as unknown as Gap & { epoch: string };
        this.positions.set(g.channel, { offset: g.from, epoch: g.epoch });
        this.emit("gap", { channel: g.channel, from: g.from, to: g.to, missed: g.missed });
        return;
      }
      case "reconnect": {
        // The pod is going away: take the fresh token, wait as asked, come back elsewhere.
        // The old connection still answers what was sent on it; it is closed once the new
        // one is up (the pod closes it itself after a short grace).
        this.resumeToken = String(frame.resumeToken);
        this.switchAfter(Number(frame.delayMs ?? 0));
        return;
      }
      case "join":
      case "leave":
        this.emit(frame.type, frame as unknown as ClientEvents["join"]);
        return;
      case "ephemeral":
        this.emit("ephemeral", frame as unknown as ClientEvents["ephemeral"]);
        return;
      case "error": {
        // An error naming a channel ends that subscription on the server: a restored one
        // that failed (subscribed again here, from our position) or one a refreshed token
        // no longer grants.
        const channel = typeof frame.channel === "string" ? frame.channel : undefined;
        if (channel && this.subscriptions.delete(channel) && frame.code !== "forbidden") {
          setTimeout(() => {
            if (this.state === "open" && !this.subscriptions.has(channel)) this.subscribeAgain(channel);
          }, 250);
        }
        this.emit("error", { code: String(frame.code), message: String(frame.message), channel });
        return;
      }
      case "expiring": {
        // The token runs out soon: with a token function, refresh in band; otherwise the
        // server closes with 4001 at `closesAt` and the app should reconnect with a new one.
        const expiring = { expiresAt: Number(frame.expiresAt), closesAt: Number(frame.closesAt) };
        this.emit("expiring", expiring);
        const t = this.options.token;
        if (typeof t === "function") {
          Promise.resolve(t())
            .then((token) => this.request({ op: "refresh", token }))
            .catch((e: unknown) => this.reportFailure(e, "refresh_failed", "refreshing the token"));
        }
        return;
      }
      default:
        return;
    }
  }

  private async request(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.connect();
    const socket = this.socket;
    if (!socket) throw new SocketFleetError("disconnected", "not connected");
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SocketFleetError("timeout", `no answer to ${String(frame.op)} in time`));
      }, this.options.requestTimeoutMs ?? 15_000);
      this.pending.set(id, { resolve, reject, timer, socket });
      socket.send(JSON.stringify({ ...frame, id }));
    });
  }

  /**
   * Subscribes. The server first sends what was published after `since` (default: the
   * position the client has); anything at or before the client's own position is dropped.
   */
  async subscribe(channel: string, since?: Position): Promise<ClientEvents["subscribed"]> {
    if (this.subscriptions.has(channel) && this.state === "open") {
      const p = this.positions.get(channel);
      return { channel, offset: p?.offset ?? "0-0", epoch: p?.epoch ?? "", recovered: true, gap: null };
    }
    const known = this.positions.get(channel);
    if (since && !(known && known.epoch === since.epoch && isNewer(known.offset, since.offset))) this.positions.set(channel, since);
    const from = since ?? known;
    const frame: Record<string, unknown> = { op: "subscribe", channel };
    if (from) frame.since = from;
    const answer = (await this.request(frame)) as unknown as ClientEvents["subscribed"];
    this.subscriptions.add(channel);
    return answer;
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.request({ op: "unsubscribe", channel });
    this.subscriptions.delete(channel);
    this.positions.delete(channel);
  }

  /**
   * Publishes; resolves with the offset the server assigned. Each publish carries a publish
   * id (`pid`), so when its outcome is unknown (`unconfirmed`, the connection dropped, no
   * answer in time) it is sent again, up to `publishRetries` times (default 3), and the
   * server stores it once: a retry of a stored one answers its first offset.
   */
  async publish(channel: string, data: unknown, opts: { pid?: string } = {}): Promise<Position> {
    const pid = opts.pid ?? randomPid();
    const retries = this.options.publishRetries ?? 3;
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await this.request({ op: "publish", channel, data, pid });
        return { offset: String(r.offset), epoch: String(r.epoch) };
      } catch (e) {
        const unknownOutcome = e instanceof SocketFleetError && ["unconfirmed", "disconnected", "timeout"].includes(e.code);
        if (!unknownOutcome || attempt >= retries || this.closedByUser) throw e;
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
  }

  async presence(channel: string): Promise<PresenceMember[]> {
    const r = await this.request({ op: "presence", channel });
    return (r.members as PresenceMember[] | undefined) ?? [];
  }

  /** Short-lived state everyone subscribed sees (and that expires after `ttlMs`). */
  async ephemeral(channel: string, key: string, data: unknown, ttlMs = 3000): Promise<void> {
    await this.request({ op: "ephemeral", channel, key, data, ttlMs });
  }

  /** "Is typing": an ephemeral `typing` key that vanishes after 3 s. */
  typing(channel: string, data: unknown = true): Promise<void> {
    return this.ephemeral(channel, "typing", data, 3000);
  }

  /** A page of history after `since` (from the start of the retained history without). */
  async history(channel: string, opts: { since?: Position; limit?: number } = {}): Promise<{ epoch: string; offset: string; gap: Gap | null; messages: { offset: string; data: unknown }[] }> {
    const frame: Record<string, unknown> = { op: "history", channel, limit: opts.limit ?? 100 };
    if (opts.since) frame.since = opts.since;
    const r = await this.request(frame);
    return r as unknown as { epoch: string; offset: string; gap: Gap | null; messages: { offset: string; data: unknown }[] };
  }

  /** Closes for good (no reconnect). */
  close(): void {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.socket?.close(1000, "client closed");
    if (!this.socket) this.setState("closed");
  }
}
