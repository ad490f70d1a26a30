//! `socketfleet local` as a test driver and a benchmark use it: `/fleet.json` lists every
//! process, a process that dies without being asked to comes back (a sidecar at once on its
//! ports, a Redis node after `--restart-after` with its cluster identity), `--redis-only`
//! runs Redis alone, and the Redis password comes from the environment and never appears
//! on a command line. Real binaries: the CLI and the sidecar next to it, redis-server.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use socketfleet_harness::redis::redis_cli_async;
use socketfleet_harness::wait::poll_until_async;
use socketfleet_plumbing::http_client;
use tokio::io::AsyncBufReadExt;

const PASSWORD: &str = "local-supervision-test-password";

fn fleet_file(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("fleet.yaml");
    std::fs::write(
        &file,
        "apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata:\n  name: supervised\nspec:\n  \
         gateway:\n    replicas: { min: 2, max: 2 }\n  redis:\n    mode: cluster\n    shards: 3\n    replicasPerShard: 0\n  \
         auth:\n    mode: none\n  drain:\n    timeout: 5s\n    reconnectSpread: 500ms\n",
    )
    .expect("write the fleet file");
    file
}

/// A running `socketfleet local`, stopped when dropped (also when a test fails) the way
/// its users stop it: SIGTERM twice, which drains and then stops every child at once.
struct Local {
    child: tokio::process::Child,
    port: u16,
}

impl Local {
    async fn start(file: &std::path::Path, args: &[&str]) -> Local {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_socketfleet"))
            .arg("local")
            .arg(file)
            .args(["--port", "0"])
            .args(args)
            .env("SOCKETFLEET_REDIS_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("socketfleet runs");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = tokio::time::timeout(Duration::from_secs(90), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("SocketFleet is running locally:") {
                    return url.trim().trim_start_matches("http://127.0.0.1:").trim_end_matches('/').parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("socketfleet local says where it runs (is target/debug/socketfleet-sidecar built? `cargo build --workspace`)");
        // Keep reading its output so that it never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("local: {line}")
            }
        });
        Local { child, port }
    }

    async fn fleet(&self) -> Value {
        http_client::get_json(&format!("127.0.0.1:{}", self.port), "/fleet.json", Duration::from_secs(3)).await.expect("/fleet.json")
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        for _ in 0..2 {
            if let Some(pid) = self.child.id() {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn kill9(pid: u64) {
    let _ = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status();
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.trim_end_matches("/ws").parse().ok()).expect("a port")
}

fn work_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-local-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn killed_processes_come_back_where_they_were() {
    let dir = work_dir("supervision");
    let local = Local::start(&fleet_file(&dir), &["--restart-after", "1s"]).await;
    let fleet = local.fleet().await;
    let sidecars = fleet["sidecars"].as_array().expect("sidecars").clone();
    let redis = fleet["redis"].as_array().expect("redis").clone();
    assert_eq!((sidecars.len(), redis.len()), (2, 3), "{fleet}");

    // The password is the one given, required, and on no command line.
    for node in &redis {
        let (port, pid) = (port_of(node["addr"].as_str().expect("addr")), node["pid"].as_u64().expect("pid"));
        assert_eq!(redis_cli_async(port, Some(PASSWORD), &["PING"]).await, "PONG");
        assert!(redis_cli_async(port, None, &["PING"]).await.contains("NOAUTH"), "redis-{port} answers without the password");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        assert!(!String::from_utf8_lossy(&cmdline).contains(PASSWORD), "the password is on redis-server's command line");
    }

    // A sidecar killed outright is started again under its name, on its port.
    let victim = &sidecars[0];
    let (name, old_pid, ws) = (victim["name"].clone(), victim["pid"].as_u64().expect("pid"), victim["ws"].clone());
    kill9(old_pid);
    let back = poll_until_async(Duration::from_secs(30), || async {
        let f = local.fleet().await;
        f["sidecars"].as_array().into_iter().flatten().any(|s| s["name"] == name && s["pid"].as_u64().is_some_and(|p| p != old_pid))
    })
    .await;
    assert!(back, "{name} did not come back: {}", local.fleet().await);
    let fleet = local.fleet().await;
    let again = fleet["sidecars"].as_array().expect("sidecars").iter().find(|s| s["name"] == name).expect("it").clone();
    assert_eq!(again["ws"], ws, "the sidecar came back on another port");
    let admin = again["admin"].as_str().expect("admin").trim_start_matches("http://").to_string();
    assert!(http_client::request(&admin, http::Method::GET, "/ready", Duration::from_secs(3)).await.is_ok_and(|r| r.status == 200));

    // A Redis Cluster node killed outright is down for --restart-after, then back on its
    // port with its identity (nodes.conf), and the cluster is whole again.
    let node = &redis[0];
    let (port, old_pid) = (port_of(node["addr"].as_str().expect("addr")), node["pid"].as_u64().expect("pid"));
    let id = redis_cli_async(port, Some(PASSWORD), &["CLUSTER", "MYID"]).await;
    kill9(old_pid);
    let down = poll_until_async(Duration::from_secs(5), || async { local.fleet().await["redis"][0]["pid"].is_null() }).await;
    assert!(down, "fleet.json never showed redis-0 down");
    let up = poll_until_async(Duration::from_secs(20), || async {
        local.fleet().await["redis"][0]["pid"].as_u64().is_some_and(|p| p != old_pid)
            && redis_cli_async(port, Some(PASSWORD), &["CLUSTER", "INFO"]).await.contains("cluster_state:ok")
    })
    .await;
    assert!(up, "redis-0 did not come back with the cluster ok: {}", local.fleet().await);
    assert_eq!(redis_cli_async(port, Some(PASSWORD), &["CLUSTER", "MYID"]).await, id, "redis-0 came back as another node");

    drop(local);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn redis_only_runs_no_sidecar() {
    let dir = work_dir("redis-only");
    let local = Local::start(&fleet_file(&dir), &["--redis-only"]).await;
    let fleet = local.fleet().await;
    assert_eq!(fleet["sidecars"].as_array().map(Vec::len), Some(0), "{fleet}");
    let redis = fleet["redis"].as_array().expect("redis");
    assert_eq!(redis.len(), 3);
    let port = port_of(redis[1]["addr"].as_str().expect("addr"));
    assert!(redis_cli_async(port, Some(PASSWORD), &["CLUSTER", "INFO"]).await.contains("cluster_state:ok"));
    drop(local);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_lists_the_options_and_succeeds() {
    for args in [&["--help"][..], &["local", "--help"], &["local", "fleet.yaml", "-h"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_socketfleet")).args(args).output().expect("runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", out.status);
        for option in ["--port", "--www", "--redis-only", "--restart-after", "SOCKETFLEET_REDIS_PASSWORD"] {
            assert!(text.contains(option), "{args:?}: --help does not mention {option}");
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_socketfleet"))
        .args(["local", "x.yaml", "--restart-after", "soon"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--restart-after needs a duration"));
}

/// Issue 17, item 3: right after `socketfleet local` said a fresh `examples/chat.yaml` fleet
/// was running, the first publish to a new channel was answered `unavailable: ... timed out`
/// (3 of 3 runs). Running now means serving: every sidecar stores a durable publish at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_fleet_serves_a_durable_publish_as_soon_as_it_says_it_runs() {
    let chat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chat.yaml");
    let local = Local::start(&chat, &[]).await;
    let fleet = local.fleet().await;
    let sidecars = fleet["sidecars"].as_array().expect("sidecars").clone();
    assert!(sidecars.len() >= 2, "{fleet}");
    for (i, s) in sidecars.iter().enumerate() {
        let api = s["api"].as_str().expect("an app API").trim_start_matches("http://").to_string();
        let body = format!(r#"{{"channel":"first:{i}","data":{{"n":{i}}}}}"#);
        let reply = http_client::send(&api, http::Method::POST, "/publish", Some(&body), Duration::from_secs(10)).await.expect("an answer");
        assert_eq!(reply.status, 200, "the first publish through {}: {}", s["name"], reply.text());
    }
}
