//! L1 test harness: real `redis-server` processes on free loopback ports (a 6-node
//! cluster, or a primary with replicas and three Sentinels), real sidecar binaries, and a
//! WebSocket client. Every process is killed when its handle drops, also when a test fails.
#![allow(dead_code)]

use socketfleet_api::settings;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use socketfleet_plumbing::http_client::{blocking, prometheus_value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const PASSWORD: &str = "l1-test-password";

pub use socketfleet_harness::ports::{free_cluster_port, free_port};
pub use socketfleet_harness::process::Proc;
use socketfleet_harness::process::log_tail;
pub use socketfleet_harness::wait::{off_worker, wait_until};

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-l1-{name}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Sends `sig` (`-STOP`, `-CONT`...) to a process.
pub fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill runs").success());
}

pub fn redis_cli(port: u16, args: &[&str]) -> String {
    socketfleet_harness::redis::redis_cli(port, Some(PASSWORD), args)
}

fn sentinel_cli(port: u16, args: &[&str]) -> String {
    socketfleet_harness::redis::redis_cli(port, None, args)
}

/// No persistence: every node of these tests is in memory only.
use socketfleet_harness::redis::IN_MEMORY_ARGS as NODE_ARGS;

/// Starts redis-server on a given port (a restarted node keeps its own).
fn start_redis(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    socketfleet_harness::redis::spawn(&dir.join(port.to_string()), port, Some(PASSWORD), &[NODE_ARGS, extra].concat())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts redis-server on a port `pick` chooses, choosing again when it was taken.
fn start_redis_anywhere(dir: &Path, extra: &[&str], pick: fn() -> u16) -> (u16, Proc) {
    socketfleet_harness::redis::start_anywhere(|port| dir.join(port.to_string()), Some(PASSWORD), &[NODE_ARGS, extra].concat(), pick)
}

use socketfleet_harness::redis::TEST_CLUSTER_ARGS as CLUSTER_NODE_ARGS;

/// Three primaries and three replicas, bootstrapped with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<(u16, Proc)>,
    pub dir: PathBuf,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = temp_dir("cluster");
        let nodes: Vec<(u16, Proc)> = (0..6).map(|_| start_redis_anywhere(&dir, CLUSTER_NODE_ARGS, free_cluster_port)).collect();
        let addrs: Vec<String> = nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        if let Err(out) = socketfleet_harness::redis::create_cluster(&addrs, Some(PASSWORD), 1) {
            panic!("cluster create failed: {out}");
        }
        let cluster = RedisCluster { nodes, dir };
        cluster.wait_ok();
        cluster
    }

    pub fn wait_ok(&self) {
        for (port, _) in &self.nodes {
            wait_until("cluster_state:ok", Duration::from_secs(20), || redis_cli(*port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
        }
    }

    pub fn addrs(&self) -> String {
        self.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    pub fn any_port(&self) -> u16 {
        self.nodes[0].0
    }

    /// The port of the primary owning `key`'s slot, asked of a live node.
    pub fn primary_for(&self, key: &str) -> u16 {
        let slot: u16 = redis_cli(self.alive_port(), &["CLUSTER", "KEYSLOT", key]).parse().expect("slot");
        self.primary_for_slot(slot)
    }

    pub fn primary_for_slot(&self, slot: u16) -> u16 {
        self.try_primary_for_slot(slot).unwrap_or_else(|| panic!("no live primary for slot {slot}"))
    }

    /// The live primary serving `slot`, if any (none during a failover).
    pub fn try_primary_for_slot(&self, slot: u16) -> Option<u16> {
        let nodes = redis_cli(self.alive_port(), &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            for range in &f[8..] {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>())
                    && (a..=b).contains(&slot)
                {
                    return f[1].split(['@', ':']).nth(1).and_then(|p| p.parse().ok());
                }
            }
        }
        None
    }

    pub fn node_id(&self, port: u16) -> String {
        redis_cli(port, &["CLUSTER", "MYID"])
    }

    pub fn primaries(&self) -> Vec<u16> {
        let nodes = redis_cli(self.alive_port(), &["CLUSTER", "NODES"]);
        let mut v: Vec<u16> = nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| l.split_whitespace().nth(1)?.split(['@', ':']).nth(1)?.parse().ok())
            .collect();
        v.sort();
        v
    }

    fn alive_port(&self) -> u16 {
        self.nodes.iter().map(|(port, _)| *port).find(|port| redis_cli(*port, &["PING"]) == "PONG").expect("a live node")
    }

    pub fn kill(&mut self, port: u16) {
        if let Some((_, p)) = self.nodes.iter_mut().find(|(p, _)| *p == port) {
            p.kill();
        }
    }

    /// The process id of the node on `port`.
    pub fn pid(&self, port: u16) -> u32 {
        self.nodes.iter().find(|(p, _)| *p == port).map(|(_, p)| p.child.id()).expect("a node on that port")
    }

    /// The port of a replica of the primary on `primary`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        let id = self.node_id(primary);
        let nodes = redis_cli(primary, &["CLUSTER", "NODES"]);
        nodes
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == id)
            .and_then(|f| f[1].split(['@', ':']).nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no replica of :{primary}:\n{nodes}"))
    }

    /// Starts an empty cluster-enabled node that has met no one (a new pod).
    pub fn add_node(&mut self) -> u16 {
        let (port, proc) = start_redis_anywhere(&self.dir, CLUSTER_NODE_ARGS, free_cluster_port);
        self.nodes.push((port, proc));
        port
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let ports: Vec<u16> = self.nodes.iter().map(|(port, _)| *port).collect();
        self.nodes.clear();
        if std::thread::panicking() {
            for port in ports {
                eprintln!(
                    "--- last log lines of redis :{port}:\n{}",
                    log_tail(&self.dir.join(port.to_string()).join(socketfleet_harness::redis::LOG_FILE), 25)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary, two replicas and three Sentinels watching them as `mymaster`.
pub struct SentinelSet {
    pub redis: Vec<(u16, Proc)>,
    pub sentinels: Vec<(u16, Proc)>,
    pub dir: PathBuf,
}

impl SentinelSet {
    pub fn start() -> SentinelSet {
        let dir = temp_dir("sentinel");
        let mut redis = vec![start_redis_anywhere(&dir, &[], free_port)];
        let primary = redis[0].0;
        for _ in 0..2 {
            redis.push(start_redis_anywhere(&dir, &["--replicaof", "127.0.0.1", &primary.to_string()], free_port));
        }
        for (p, _) in &redis[1..] {
            wait_until("replica link up", Duration::from_secs(20), || {
                redis_cli(*p, &["INFO", "replication"]).contains("master_link_status:up")
            });
        }
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n\
                     sentinel auth-pass mymaster {PASSWORD}\nsentinel parallel-syncs mymaster 2\n"
                ),
            )
            .expect("sentinel conf");
            let child = Command::new("redis-sentinel")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-sentinel starts");
            sentinels.push((port, Proc { child, name: format!("sentinel:{port}") }));
            wait_until("sentinel up", Duration::from_secs(10), || sentinel_cli(port, &["PING"]) == "PONG");
        }
        for (port, _) in &sentinels {
            wait_until("sentinels see the replicas", Duration::from_secs(20), || {
                sentinel_cli(*port, &["SENTINEL", "replicas", "mymaster"]).lines().filter(|l| *l == "flags").count() >= 2
                    && sentinel_cli(*port, &["SENTINEL", "sentinels", "mymaster"]).lines().filter(|l| *l == "flags").count() >= 2
            });
        }
        SentinelSet { redis, sentinels, dir }
    }

    pub fn sentinel_addrs(&self) -> String {
        self.sentinels.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    pub fn primary_port(&self) -> u16 {
        let out = sentinel_cli(self.sentinels[0].0, &["SENTINEL", "get-master-addr-by-name", "mymaster"]);
        out.lines().nth(1).and_then(|p| p.parse().ok()).expect("primary port")
    }

    pub fn kill(&mut self, port: u16) {
        if let Some((_, p)) = self.redis.iter_mut().find(|(p, _)| *p == port) {
            p.kill();
        }
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        self.sentinels.clear();
        self.redis.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A sidecar process on free loopback ports. Its log (stderr, at `SF_TEST_LOG`'s level,
/// warn by default) goes to a file whose tail is printed when a test fails while it runs:
/// a failure seen once in CI must be explainable from its output.
pub struct Sidecar {
    pub proc: Proc,
    pub ws_port: u16,
    pub admin_port: u16,
    pub api_port: u16,
    pub name: String,
    log: PathBuf,
}

/// Log lines of a sidecar printed when a test fails.
const LOG_TAIL: usize = 60;

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.proc.kill();
        if std::thread::panicking() {
            eprintln!("--- last {LOG_TAIL} log lines of {} ({}):\n{}", self.name, self.log.display(), log_tail(&self.log, LOG_TAIL));
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Sidecar {
    /// Starts a sidecar with `env` on free loopback ports and waits until it is ready; one
    /// that exits first (a port taken between the pick and its bind) starts again on others.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Sidecar {
        for _ in 0..3 {
            let mut s = Sidecar::spawn(name, env);
            let mut exited = false;
            // Ready means this sidecar says so: `/status` names it. A port picked free can be
            // taken before the sidecar binds it, by a listener that would answer `/ready` too.
            wait_until(&format!("{name} ready"), Duration::from_secs(20), || {
                exited = s.proc.exited().is_some();
                exited
                    || serde_json::from_str::<Value>(&s.http_get(s.admin_port, "/status").1)
                        .is_ok_and(|st| st["node"] == name && st["ready"] == true)
            });
            if !exited {
                return s;
            }
            eprintln!("{name} exited before it was ready:\n{}", std::fs::read_to_string(&s.log).unwrap_or_default());
        }
        panic!("sidecar {name} exited before it was ready, three times (SF_TEST_LOG=info for more of its log)");
    }

    fn spawn(name: &str, env: &[(&str, &str)]) -> Sidecar {
        let (ws_port, admin_port, api_port) = (free_port(), free_port(), free_port());
        let log = std::env::temp_dir().join(format!("sf-l1-{name}-{}-{ws_port}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("sidecar log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_socketfleet-sidecar"));
        cmd.env_clear()
            .env(settings::ENV_WS_ADDR, format!("127.0.0.1:{ws_port}"))
            .env(settings::ENV_ADMIN_ADDR, format!("127.0.0.1:{admin_port}"))
            .env(settings::ENV_APP_API_ADDR, format!("127.0.0.1:{api_port}"))
            .env(settings::ENV_NODE_NAME, name)
            .env(settings::ENV_REDIS_PASSWORD, PASSWORD)
            .env(settings::ENV_TOPOLOGY_POLL, "1s")
            .env(settings::ENV_REDIS_RETRY_BUDGET, "5s")
            .env(settings::ENV_LOG, std::env::var("SF_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("sidecar starts");
        Sidecar { proc: Proc { child, name: name.into() }, ws_port, admin_port, api_port, name: name.into(), log }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.ws_port)
    }

    /// A blocking GET; returns status and body.
    pub fn http_get(&self, port: u16, path: &str) -> (u16, String) {
        http_request(port, "GET", path, None)
    }

    /// A request to its admin listener (`/drain`, `/shed`...), waiting off the async
    /// worker like every blocking call in these tests.
    pub fn admin(&self, method: &str, path: &str) -> (u16, String) {
        http_request(self.admin_port, method, path, None)
    }

    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http_get(self.admin_port, "/metrics");
        prometheus_value(&body, name).unwrap_or(0.0)
    }
}

/// One HTTP request to a loopback port (status 0 when nothing answered), on the one
/// client in `socketfleet-plumbing`.
pub fn http_request(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let method = http::Method::from_bytes(method.as_bytes()).expect("a method");
    match off_worker(|| blocking(&format!("127.0.0.1:{port}"), method, path, body, Duration::from_secs(10))) {
        Ok(reply) => (reply.status, reply.text()),
        Err(_) => (0, String::new()),
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A protocol client: requests get ids; other frames wait in `inbox`.
pub struct Client {
    pub ws: Socket,
    pub inbox: VecDeque<Value>,
    pub welcome: Value,
    next_id: u64,
}

pub const STEP: Duration = Duration::from_secs(15);

impl Client {
    pub async fn connect(url: &str) -> Client {
        Self::try_connect(url).await.expect("websocket connects")
    }

    pub async fn try_connect(url: &str) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client::after_handshake(ws).await)
    }

    /// Wraps an upgraded socket; the server's first frame must be `welcome`.
    async fn after_handshake(ws: Socket) -> Client {
        let mut c = Client { ws, inbox: VecDeque::new(), welcome: Value::Null, next_id: 1 };
        let welcome = c.next_frame(STEP).await.expect("welcome frame");
        assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
        c.welcome = welcome;
        c
    }

    /// A client whose socket receive buffer is tiny and fixed (no autotuning), so a client
    /// that stops reading backs up the server within a few hundred kilobytes.
    pub async fn connect_small_buffer(url: &str, port: u16) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.expect("handshake");
        Client::after_handshake(ws).await
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// The next frame from the socket (not the inbox).
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(timeout, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).expect("server sends JSON")),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Sends `frame` with a fresh id and returns the frame answering it.
    pub async fn call(&mut self, mut frame: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        frame["id"] = json!(id);
        self.send_raw(Message::Text(frame.to_string().into())).await;
        loop {
            let f = self.next_frame(STEP).await.unwrap_or_else(|| panic!("no answer to {frame}"));
            if f["id"] == json!(id) {
                return f;
            }
            self.inbox.push_back(f);
        }
    }

    /// The next frame of `kind` (inbox first), or None after `timeout`.
    pub async fn next_of(&mut self, kind: &str, timeout: Duration) -> Option<Value> {
        if let Some(i) = self.inbox.iter().position(|f| f["type"] == kind) {
            return self.inbox.remove(i);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self.next_frame(left).await?;
            if f["type"] == kind {
                return Some(f);
            }
            self.inbox.push_back(f);
        }
    }

    /// The code of the close frame the server sends next (other frames are skipped), or
    /// None when the connection ends without one or nothing comes within 10 frames of
    /// [`STEP`] each.
    pub async fn close_code(&mut self) -> Option<tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode> {
        for _ in 0..10 {
            match tokio::time::timeout(STEP, futures_util::StreamExt::next(&mut self.ws)).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => return Some(frame.code),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
        None
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        let r = self.call(json!({"op": "subscribe", "channel": channel})).await;
        assert_eq!(r["type"], "subscribed", "subscribe {channel}: {r}");
        r
    }

    pub async fn publish(&mut self, channel: &str, data: Value) -> Value {
        self.call(json!({"op": "publish", "channel": channel, "data": data})).await
    }
}

/// Where the chaos ledgers file a publication: its channel and epoch. Seqs restart at 1 in a
/// new epoch (a stream lost with a primary that never replicated it), so ordering and
/// exactly-once hold per epoch; an epoch change is announced to clients as a gap.
pub fn ledger_key(channel: &Value, epoch: &Value) -> String {
    format!("{}@{}", channel.as_str().unwrap_or_default(), epoch.as_str().unwrap_or_default())
}

/// Splits `"<ms>-<seq>"`.
pub fn seq_of(offset: &Value) -> u64 {
    offset.as_str().and_then(|s| s.split_once('-')).and_then(|(_, s)| s.parse().ok()).expect("offset")
}

pub fn cluster_env(cluster: &RedisCluster) -> Vec<(&'static str, String)> {
    vec![(settings::ENV_AUTH, "none".into()), (settings::ENV_REDIS_MODE, "cluster".into()), (settings::ENV_REDIS_ADDRS, cluster.addrs())]
}

/// Starts `n` sidecars with `env`. Unless `env` says otherwise, the first runs one worker
/// thread (a pod limited to one CPU) and the others one per CPU: every test covers both
/// runtimes, and a fleet of several mixes them.
pub fn start_sidecars(n: usize, env: &[(&'static str, String)]) -> Vec<Sidecar> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let set = env.iter().any(|(k, _)| *k == settings::ENV_WORKER_THREADS);
    (0..n)
        .map(|i| {
            let mut env = env.clone();
            if i == 0 && !set {
                env.push((settings::ENV_WORKER_THREADS, "1"));
            }
            Sidecar::start(&format!("sidecar-{i}"), &env)
        })
        .collect()
}

impl RedisCluster {
    /// Starts a killed node again on its port and directory (it rejoins from nodes.conf).
    pub fn restart(&mut self, port: u16) {
        let proc = start_redis(&self.dir, port, CLUSTER_NODE_ARGS);
        if let Some(slot) = self.nodes.iter_mut().find(|(p, _)| *p == port) {
            slot.1 = proc;
        }
    }
}

/// One plain Redis node (for protocol and auth tests, which need no cluster).
pub struct RedisStandalone {
    pub port: u16,
    pub proc: Proc,
    pub dir: PathBuf,
}

impl RedisStandalone {
    pub fn start() -> RedisStandalone {
        let dir = temp_dir("standalone");
        let (port, proc) = start_redis_anywhere(&dir, &[], free_port);
        RedisStandalone { port, proc, dir }
    }

    /// SIGKILLs it and starts it again on its port: empty, as a node without persistence.
    pub fn restart_empty(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(self.dir.join(self.port.to_string()));
        self.proc = start_redis(&self.dir, self.port, &[]);
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisStandalone {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Messages each subscriber received, per channel and epoch ([`ledger_key`]), as seqs in
/// arrival order.
pub type Received = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u64>>>>;

/// Subscribes a client to every channel and records messages until `stop` flips.
pub async fn collect(
    url: String,
    channels: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Received, tokio::task::JoinHandle<()>) {
    let mut client = Client::connect(&url).await;
    for c in &channels {
        client.subscribe(c).await;
    }
    let received: Received = Default::default();
    let sink = received.clone();
    let handle = tokio::spawn(async move {
        let record = |f: &Value| {
            if f["type"] == "message" {
                sink.lock().expect("lock").entry(ledger_key(&f["channel"], &f["epoch"])).or_default().push(seq_of(&f["offset"]));
            }
        };
        for f in std::mem::take(&mut client.inbox) {
            record(&f);
        }
        while !*stop.borrow() {
            match client.next_frame(Duration::from_millis(100)).await {
                Some(f) => record(&f),
                // A closed socket answers at once: sleep, so that this loop always yields
                // (a test that fails must not hang its runtime's shutdown on it).
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    (received, handle)
}

/// Publishes `{"n": i}` round-robin over `channels` until `stop`; returns acked seqs per
/// channel and the number of publishes the server refused.
pub async fn publish_until(
    url: String,
    channels: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (std::collections::HashMap<String, Vec<u64>>, u64) {
    let mut client = Client::connect(&url).await;
    let mut acked: std::collections::HashMap<String, Vec<u64>> = Default::default();
    let mut refused = 0;
    let mut i = 0u64;
    while !*stop.borrow() && i < 200_000 {
        let ch = &channels[(i as usize) % channels.len()];
        let r = client.publish(ch, json!({"n": i})).await;
        if r["ok"] == true {
            acked.entry(ledger_key(&r["channel"], &r["epoch"])).or_default().push(seq_of(&r["offset"]));
        } else {
            refused += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        i += 1;
    }
    (acked, refused)
}

/// Waits until every subscriber holds every acked seq (or `timeout`), then asserts: each
/// channel's messages arrived in increasing order without duplicates, none acked missing.
pub async fn assert_exactly_once(subscribers: &[Received], acked: &std::collections::HashMap<String, Vec<u64>>, timeout: Duration) {
    let complete = |r: &Received| {
        let r = r.lock().expect("lock");
        acked.iter().all(|(ch, seqs)| {
            let got: std::collections::HashSet<u64> = r.get(ch).map(|v| v.iter().copied().collect()).unwrap_or_default();
            seqs.iter().all(|s| got.contains(s))
        })
    };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !subscribers.iter().all(complete) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, r) in subscribers.iter().enumerate() {
        let r = r.lock().expect("lock");
        let mut epochs: Vec<&String> = r.keys().collect();
        epochs.sort();
        if epochs.len() > acked.len() {
            eprintln!("MEASURE subscriber {i} saw more channel epochs than were acknowledged (a stream recreated): {epochs:?}");
        }
        for (ch, seqs) in acked {
            let got = r.get(ch).cloned().unwrap_or_default();
            assert!(got.windows(2).all(|w| w[0] < w[1]), "subscriber {i} channel {ch}: out of order or duplicated: {got:?}");
            let set: std::collections::HashSet<u64> = got.iter().copied().collect();
            let missing: Vec<u64> = seqs.iter().filter(|s| !set.contains(s)).copied().collect();
            assert!(missing.is_empty(), "subscriber {i} channel {ch}: missing acked {missing:?} (got {} of {})", got.len(), seqs.len());
        }
    }
}

/// Continuous traffic for chaos tests: a collecting subscriber on every sidecar (all
/// channels) and one publisher on the first sidecar, until [`Traffic::finish`].
pub struct Traffic {
    pub subscribers: Vec<Received>,
    collectors: Vec<tokio::task::JoinHandle<()>>,
    stop_collectors: tokio::sync::watch::Sender<bool>,
    stop_publisher: tokio::sync::watch::Sender<bool>,
    publisher: tokio::task::JoinHandle<(std::collections::HashMap<String, Vec<u64>>, u64)>,
}

impl Traffic {
    pub async fn start(sidecars: &[Sidecar], channels: &[String]) -> Traffic {
        let (stop_collectors, stop) = tokio::sync::watch::channel(false);
        let mut subscribers = Vec::new();
        let mut collectors = Vec::new();
        for s in sidecars {
            let (r, h) = collect(s.url(), channels.to_vec(), stop.clone()).await;
            subscribers.push(r);
            collectors.push(h);
        }
        let (stop_publisher, pub_stop) = tokio::sync::watch::channel(false);
        let publisher = tokio::spawn(publish_until(sidecars[0].url(), channels.to_vec(), pub_stop));
        Traffic { subscribers, collectors, stop_collectors, stop_publisher, publisher }
    }

    /// Stops publishing, adds `extra` acked publications, asserts every subscriber got
    /// every acked message exactly once and in order; returns (acked total, refused).
    pub async fn finish(self, extra: &[(&str, u64)]) -> (usize, u64) {
        let _ = self.stop_publisher.send(true);
        let (mut acked, refused) = self.publisher.await.expect("publisher");
        for (channel, seq) in extra {
            let v = acked.entry((*channel).to_string()).or_default();
            v.push(*seq);
            v.sort();
        }
        assert_exactly_once(&self.subscribers, &acked, Duration::from_secs(20)).await;
        let _ = self.stop_collectors.send(true);
        for t in self.collectors {
            let _ = t.await;
        }
        (acked.values().map(Vec::len).sum(), refused)
    }

    /// Waits until every subscriber has received publication `seq` filed under `key`
    /// (see [`ledger_key`]).
    pub fn wait_all_received(&self, key: &str, seq: u64, timeout: Duration) {
        wait_until("every subscriber received the probe", timeout, || {
            self.subscribers.iter().all(|r| r.lock().expect("lock").get(key).is_some_and(|v| v.contains(&seq)))
        });
    }
}

/// Publishes `data` on `channel` until the server acknowledges it (e.g. once a failover
/// completed); returns its ledger key and seq.
pub async fn publish_until_acked(url: &str, channel: &str, timeout: Duration) -> (String, u64) {
    let mut client = Client::connect(url).await;
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        last = client.publish(channel, json!("probe")).await;
        if last["ok"] == true {
            return (ledger_key(&last["channel"], &last["epoch"]), seq_of(&last["offset"]));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("publishing on {channel} did not resume within {timeout:?}; the last answer: {last}");
}
