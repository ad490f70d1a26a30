//! How `socketfleet local` starts and ends, checked from outside as a person or a
//! supervisor sees it: SIGINT, SIGTERM and SIGHUP each stop every process it started and
//! remove its folder; `--keep-logs` keeps plain-text logs of every process; a start that
//! fails leaves nothing behind and says why; problems it can see in advance are reported
//! together before anything starts; a mistyped field is refused with its path; `- <name>`
//! drains that sidecar and `+` adds one. Real
//! binaries: the CLI, the sidecar next to it, redis-server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use socketfleet_harness::wait::poll_until_async;
use socketfleet_plumbing::http_client;
use tokio::io::{AsyncBufReadExt, AsyncRead};

/// A small fleet's spec: 3 Redis Cluster primaries, one sidecar, a quick drain.
const REDIS: &str = "  redis:\n    mode: cluster\n    shards: 3\n    replicasPerShard: 0\n";
const GATEWAY: &str = "  gateway:\n    replicas: { min: 1, max: 1 }\n";
const DRAIN: &str = "  drain:\n    timeout: 5s\n    reconnectSpread: 500ms\n";

/// A fleet file named `name` whose `spec:` holds `spec` (lines indented by two).
fn fleet_file(name: &str, spec: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-lifecycle-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("fleet.yaml");
    std::fs::write(&file, format!("apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata:\n  name: {name}\nspec:\n{spec}"))
        .expect("write the fleet file");
    file
}

/// A `socketfleet local` process and everything it printed.
struct Run {
    child: tokio::process::Child,
    /// What a person types into its terminal.
    stdin: tokio::process::ChildStdin,
    output: Arc<Mutex<String>>,
}

impl Run {
    fn start(file: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        Self::spawn(tokio::process::Command::new(env!("CARGO_BIN_EXE_socketfleet")), file, args, env)
    }

    /// [`Run::start`] under an open-file limit of `limit` (soft and hard), as a login's
    /// limits would set it: util-linux's `prlimit` runs it.
    fn start_with_open_file_limit(file: &Path, limit: u64) -> Run {
        let mut cmd = tokio::process::Command::new("prlimit");
        cmd.arg(format!("--nofile={limit}:{limit}")).arg("--").arg(env!("CARGO_BIN_EXE_socketfleet"));
        Self::spawn(cmd, file, &[], &[])
    }

    fn spawn(mut cmd: tokio::process::Command, file: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut child = cmd
            .arg("local")
            .arg(file)
            .args(["--port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("socketfleet runs");
        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("stdout"), output.clone());
        collect(child.stderr.take().expect("stderr"), output.clone());
        let stdin = child.stdin.take().expect("stdin");
        Run { child, stdin, output }
    }

    /// Types `line` and Enter.
    async fn type_line(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.expect("type into socketfleet local");
    }

    /// Waits (at most 30 s) until its output holds `text`.
    async fn says(&self, text: &str) {
        let said = poll_until_async(Duration::from_secs(30), || {
            let out = self.output();
            async move { out.contains(text) }
        })
        .await;
        assert!(said, "it never said {text:?}:\n{}", self.output());
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    /// The port it says it runs on, once it does.
    async fn running(&self) -> u16 {
        let said = poll_until_async(Duration::from_secs(90), || {
            let out = self.output();
            async move { out.contains("SocketFleet is running locally:") }
        })
        .await;
        let out = self.output();
        assert!(said, "socketfleet local did not say it runs:\n{out}");
        let line = out.lines().find(|l| l.contains("SocketFleet is running locally:")).expect("the line");
        line.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("a port")
    }

    /// Waits (at most 60 s) for it to exit; its exit code.
    async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
        let status = status.unwrap_or_else(|_| panic!("socketfleet local did not exit in 60 s:\n{}", self.output())).expect("wait");
        // Let the readers take the last lines.
        tokio::time::sleep(Duration::from_millis(200)).await;
        status.code()
    }
}

/// A test that fails while it runs stops it as its users do, SIGTERM twice (drain, then at
/// once), so that its sidecars and Redis nodes stop with it: `kill_on_drop`'s SIGKILL alone
/// would leave them running.
impl Drop for Run {
    fn drop(&mut self) {
        for _ in 0..2 {
            match (self.child.try_wait(), self.child.id()) {
                // Not `signal`: an assertion failing here, during a panic, would abort.
                (Ok(None), Some(pid)) => drop(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()),
                _ => return,
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn collect(stream: impl AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut out = into.lock().expect("output");
            out.push_str(&line);
            out.push('\n');
        }
    });
}

fn signal(pid: u32, name: &str) {
    let ok = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().expect("kill runs");
    assert!(ok.success(), "kill -{name} {pid}");
}

/// The folder a run with this pid works in.
fn work_folder(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("socketfleet-local-{pid}"))
}

/// Whether `pid` is a live process (a zombie waiting for its reaper is not).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

/// Live processes whose command line names `folder` (every Redis process local mode
/// starts logs into its folder, so names it).
fn processes_naming(folder: &Path) -> Vec<String> {
    let needle = folder.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u64>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && alive(pid) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Every process `/fleet.json` lists: (what, pid).
async fn fleet_pids(port: u16) -> Vec<(String, u64)> {
    let fleet: Value =
        http_client::get_json(&format!("127.0.0.1:{port}"), "/fleet.json", Duration::from_secs(3)).await.expect("/fleet.json");
    let mut pids = Vec::new();
    for group in ["sidecars", "redis"] {
        for p in fleet[group].as_array().expect(group) {
            pids.push((format!("{group} {}", p["name"]), p["pid"].as_u64().expect("pid")));
        }
    }
    pids
}

/// Waits (at most 10 s) until none of `pids` is alive and no process names `folder`.
async fn all_gone(pids: &[(String, u64)], folder: &Path) -> Result<(), String> {
    let gone = poll_until_async(Duration::from_secs(10), || {
        let left = pids.iter().any(|(_, p)| alive(*p)) || !processes_naming(folder).is_empty();
        async move { !left }
    })
    .await;
    if gone {
        return Ok(());
    }
    let alive: Vec<&String> = pids.iter().filter(|(_, p)| alive(*p)).map(|(what, _)| what).collect();
    Err(format!("still running: {alive:?} {:?}", processes_naming(folder)))
}

#[tokio::test]
async fn every_stop_signal_stops_every_process_and_removes_the_folder() {
    let gateway = format!("{GATEWAY}    app: {{ image: example.com/chat-app:1, port: 3000 }}\n");
    let file = fleet_file("signals", &format!("{gateway}{REDIS}{DRAIN}"));
    for sig in ["INT", "TERM", "HUP"] {
        let mut run = Run::start(&file, &["--www", "/nonexistent-demo-pages"], &[]);
        let port = run.running().await;
        let folder = work_folder(run.pid());
        assert!(folder.is_dir(), "SIG{sig}: {} is its folder", folder.display());
        let pids = fleet_pids(port).await;
        assert_eq!(pids.len(), 4, "SIG{sig}: one sidecar and three Redis nodes: {pids:?}");
        assert!(pids.iter().all(|(_, p)| alive(*p)), "SIG{sig}: {pids:?}");
        if sig == "INT" {
            // What it will not do is said at start.
            let out = run.output();
            assert!(out.contains("note: gateway.app (example.com/chat-app:1)") && out.contains("local mode runs no containers"), "{out}");
            assert!(out.contains("note: --www /nonexistent-demo-pages: no index.html there"), "{out}");
        }

        signal(run.pid(), sig);
        let code = run.exit_code().await;
        let out = run.output();
        assert_eq!(code, Some(0), "SIG{sig}: a stop asked for is a clean exit:\n{out}");
        assert!(out.contains("drained") && out.contains("stopped"), "SIG{sig}:\n{out}");
        all_gone(&pids, &folder).await.unwrap_or_else(|e| panic!("SIG{sig}: {e}\n{out}"));
        assert!(!folder.exists(), "SIG{sig}: {} is left behind", folder.display());
    }
}

/// SIGKILL cannot be caught, so local mode cannot stop its processes itself: the guard it
/// starts first does (`cli/src/local/guard.rs`), and removes the run's folder.
#[tokio::test]
async fn a_sigkilled_local_mode_leaves_no_process_and_no_folder_behind() {
    let file = fleet_file("sigkill", &format!("{GATEWAY}{REDIS}{DRAIN}"));
    let mut run = Run::start(&file, &[], &[]);
    let port = run.running().await;
    let folder = work_folder(run.pid());
    let pids = fleet_pids(port).await;
    assert_eq!(pids.len(), 4, "one sidecar and three Redis nodes: {pids:?}");
    assert!(pids.iter().all(|(_, p)| alive(*p)), "{pids:?}");

    signal(run.pid(), "KILL");
    assert_eq!(run.exit_code().await, None, "ended by the signal");
    all_gone(&pids, &folder).await.unwrap_or_else(|e| panic!("after SIGKILL: {e}\n{}", run.output()));
    let removed = poll_until_async(Duration::from_secs(10), || {
        let gone = !folder.exists();
        async move { gone }
    })
    .await;
    assert!(removed, "{} is left behind", folder.display());
}

#[tokio::test]
async fn keep_logs_keeps_a_plain_text_log_of_every_process() {
    let file = fleet_file("keep-logs", &format!("{GATEWAY}{REDIS}{DRAIN}"));
    let mut run = Run::start(&file, &["--keep-logs"], &[]);
    run.running().await;
    let folder = work_folder(run.pid());
    signal(run.pid(), "TERM");
    assert_eq!(run.exit_code().await, Some(0), "{}", run.output());
    let out = run.output();
    assert!(out.contains(&format!("logs kept in {}", folder.display())), "{out}");
    let mut logs: Vec<String> = std::fs::read_dir(&folder)
        .expect("the folder is kept")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    logs.sort();
    assert_eq!(logs, ["redis-0.log", "redis-1.log", "redis-2.log", "sidecar-0.log"], "{out}");
    for log in &logs {
        let text = std::fs::read_to_string(folder.join(log)).expect("read the log");
        assert!(!text.contains('\u{1b}'), "{log} has colour codes though it is not a terminal:\n{text}");
        if log.starts_with("redis") {
            assert!(text.contains("Ready to accept connections"), "{log}:\n{text}");
        }
    }
    std::fs::remove_dir_all(&folder).expect("remove the kept folder");
}

#[tokio::test]
async fn a_sidecar_that_cannot_start_leaves_nothing_behind_and_says_why() {
    let key = std::env::temp_dir().join(format!("sf-lifecycle-not-a-key-{}.pem", std::process::id()));
    std::fs::write(&key, "this is not a PEM public key\n").expect("write the key file");
    let auth = "  auth:\n    mode: rs256\n    publicKeySecretRef: { name: jwt, key: key.pem }\n";
    let file = fleet_file("bad-key", &format!("{GATEWAY}{REDIS}{DRAIN}{auth}"));
    let mut run = Run::start(&file, &[], &[("SOCKETFLEET_JWT_PUBLIC_KEY_FILE", key.to_str().expect("path"))]);
    let folder = work_folder(run.pid());
    let code = run.exit_code().await;
    let out = run.output();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("sidecar sidecar-0 exited"), "{out}");
    // The sidecar's own reason is on the CLI's line, not only in a log about to be removed.
    let line = out.lines().find(|l| l.contains("sidecar sidecar-0 exited")).expect("the line");
    assert!(line.contains("(last logged:") && line.to_lowercase().contains("key"), "{line}");
    all_gone(&[], &folder).await.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(!folder.exists(), "{} is left behind:\n{out}", folder.display());
    let _ = std::fs::remove_file(key);
}

#[tokio::test]
async fn problems_seen_in_advance_are_reported_together_before_anything_starts() {
    let extra = "  redis:\n    mode: external\n    external:\n      mode: cluster\n      \
                 addresses: [\"redis-0.nowhere.invalid:6379\", \"redis-1.nowhere.invalid:6379\"]\n      \
                 passwordSecretRef: { name: my-redis, key: password }\n  \
                 auth:\n    mode: rs256\n    publicKeySecretRef: { name: jwt, key: key.pem }\n";
    let file = fleet_file("external", &format!("{GATEWAY}{extra}"));
    let mut run = Run::start(&file, &[], &[]);
    let folder = work_folder(run.pid());
    let code = run.exit_code().await;
    let out = run.output();
    assert_eq!(code, Some(1), "{out}");
    for expected in [
        "SOCKETFLEET_REDIS_PASSWORD",
        "redis-0.nowhere.invalid:6379 cannot be resolved",
        "redis-1.nowhere.invalid:6379 cannot be resolved",
        "SOCKETFLEET_JWT_PUBLIC_KEY_FILE",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert!(!out.contains("starting"), "nothing starts:\n{out}");
    assert!(!folder.exists());
}

#[tokio::test]
async fn a_mistyped_field_is_refused_with_its_path_and_the_name_it_likely_meant() {
    let file = fleet_file("typo", &format!("{GATEWAY}{REDIS}  drian:\n    timeout: 5s\n"));
    let mut run = Run::start(&file, &[], &[]);
    let code = run.exit_code().await;
    let out = run.output();
    assert_eq!(code, Some(65), "{out}");
    assert!(out.contains(r#"unknown field "spec.drian" (did you mean "drain"?)"#), "{out}");
}

/// `- <name>` drains that sidecar, not the one `-` would pick (the first of two equally
/// busy): it stops, the other keeps running, and at `replicas.min` a new one takes its
/// place. A name no sidecar has is answered with the serving ones. `+` adds one.
#[tokio::test]
async fn minus_and_a_name_drains_that_sidecar_and_plus_adds_one() {
    let file = fleet_file("named", &format!("{REDIS}  gateway:\n    replicas: {{ min: 2, max: 3 }}\n{DRAIN}"));
    let mut run = Run::start(&file, &[], &[]);
    let port = run.running().await;
    let sidecars: Vec<(String, u64)> = fleet_pids(port).await.into_iter().filter(|(what, _)| what.starts_with("sidecars")).collect();
    let pid_of = |name: &str| sidecars.iter().find(|(what, _)| what.contains(name)).map(|(_, p)| *p).expect("a sidecar of that name");
    let (first, second) = (pid_of("sidecar-0"), pid_of("sidecar-1"));

    run.type_line("- nosuch").await;
    run.says("no serving sidecar is named nosuch; serving: sidecar-0, sidecar-1").await;
    run.type_line("- sidecar-1").await;
    run.says("sidecar-1 is replaced (replicas.min is 2)").await;
    run.says("- sidecar-1: its 0 clients moved in").await;
    run.says("; it has stopped").await;
    assert!(!alive(second), "sidecar-1 stopped:\n{}", run.output());
    assert!(alive(first), "sidecar-0 keeps running:\n{}", run.output());
    let now: Vec<String> =
        fleet_pids(port).await.into_iter().filter(|(what, _)| what.starts_with("sidecars")).map(|(what, _)| what).collect();
    assert_eq!(now.len(), 2, "a new sidecar took its place: {now:?}");
    assert!(!now.iter().any(|what| what.contains("sidecar-1")), "{now:?}");

    run.type_line("+").await;
    let three = poll_until_async(Duration::from_secs(30), || async {
        fleet_pids(port).await.iter().filter(|(what, p)| what.starts_with("sidecars") && alive(*p)).count() == 3
    })
    .await;
    assert!(three, "+ added a third sidecar:\n{}", run.output());

    signal(run.pid(), "INT");
    assert_eq!(run.exit_code().await, Some(0), "{}", run.output());
}

/// A WebSocket upgrade through the balancer, answered or not within `wait`: the status
/// line, or None while it waits in the listener's queue.
async fn upgrade(port: u16, wait: Duration) -> (tokio::net::TcpStream, Option<String>) {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("the balancer's listener takes the connection");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.expect("send the upgrade");
    let answer = status_line(&mut s, wait).await;
    (s, answer)
}

/// The first line of what `s` answers within `wait` (`""` when it closes without a word).
async fn status_line(s: &mut tokio::net::TcpStream, wait: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(wait, s.read(&mut buf)).await.ok()?.unwrap_or(0);
    Some(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string())
}

/// CPU seconds `pid` has used (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the command name: utime and stime.
    let ticks: f64 = fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    ticks / 100.0
}

/// More clients than the balancer has open files for: the banner says how many fit; a
/// client beyond them is told 503 with the reason, or waits in the listener's queue while
/// no file is free, instead of being cut off mid-handshake; the balancer does not spin on
/// a failing `accept` while it is full; once clients leave, the waiting ones are served.
#[tokio::test]
async fn clients_beyond_the_open_file_limit_wait_or_are_told_why_and_are_served_once_others_leave() {
    const LIMIT: u64 = 300;
    let file = fleet_file("open-files", &format!("{REDIS}{GATEWAY}{DRAIN}  auth:\n    mode: none\n"));
    let mut run = Run::start_with_open_file_limit(&file, LIMIT);
    let port = run.running().await;
    run.says(&format!("it proxies up to 50 clients at once: open-file limit {LIMIT}")).await;

    // Each proxied client holds two of the balancer's files: fill them until one is told
    // the balancer is full, or (when the last file went to the client before) waits in
    // the listener's queue: which of the two comes first depends on how many files the
    // process holds besides, one more or less.
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    let mut full = None;
    for _ in 0..LIMIT {
        let (s, answer) = upgrade(port, Duration::from_secs(5)).await;
        match answer.as_deref() {
            Some(l) if l.starts_with("HTTP/1.1 101") => served.push(s),
            Some(l) if l.starts_with("HTTP/1.1 503") => {
                full = Some(l.to_string());
                break;
            }
            None => {
                full = Some("waiting in the queue".to_string());
                waiting.push(s);
                break;
            }
            Some(other) => panic!("a client got {other:?} (an empty line: cut off without an answer):\n{}", run.output()),
        }
    }
    assert!(full.is_some() && served.len() >= 50, "{} served, then {full:?}:\n{}", served.len(), run.output());
    // A connection that says nothing holds the last free file while its request is read:
    // now `accept` itself fails, and the next clients wait in the listener's queue.
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let (s, answer) = upgrade(port, Duration::from_millis(500)).await;
        match answer.as_deref() {
            None => waiting.push(s),
            Some(l) if l.starts_with("HTTP/1.1 503") => {}
            other => panic!("a client beyond the limit got {other:?}:\n{}", run.output()),
        }
    }
    assert!(!waiting.is_empty(), "with no file free, clients wait in the queue:\n{}", run.output());
    run.says("! balancer: Too many open files").await;
    let pid = run.pid();
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds(pid) - before;
    assert!(used < 1.0, "the full balancer used {used:.2} CPU seconds in 2 s (spinning on accept):\n{}", run.output());

    let (fit, waited) = (served.len(), waiting.len());
    served.clear();
    for s in &mut waiting {
        let answer = status_line(s, Duration::from_secs(10)).await;
        assert!(
            answer.as_deref().is_some_and(|l| l.starts_with("HTTP/1.1 101")),
            "a waiting client is served once others leave: {answer:?}:\n{}",
            run.output()
        );
    }
    eprintln!(
        "MEASURE open-file limit {LIMIT}: {fit} clients fit, {waited} waited and were served later, {used:.2} CPU s in 2 s while full"
    );
    drop(waiting);
    signal(run.pid(), "INT");
    assert_eq!(run.exit_code().await, Some(0), "{}", run.output());
}
