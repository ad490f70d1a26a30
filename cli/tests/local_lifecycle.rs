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
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_socketfleet"))
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
