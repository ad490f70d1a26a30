//! Harness of the L2 tests: a real control plane (`e2e/control-plane.sh`), `kubectl` and
//! `helm` against it, and the operator running as a local process with the credentials of
//! the chart's ServiceAccount. Everything started is stopped on drop, also when a test
//! fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use http::Method;
use serde_json::Value;
use socketfleet_plumbing::http_client::{blocking, prometheus_sum, prometheus_value};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The cluster under test: etcd, kube-apiserver, kube-controller-manager and
/// kube-scheduler on loopback, or, when `SF_E2E_KUBECONFIG` names one, any cluster (kind:
/// see `e2e/kind.sh`).
pub struct ControlPlane {
    /// Files of this run (the control plane's own, its audit log, kubeconfigs).
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// A cluster this harness did not start (nothing to stop, no audit log, maybe nodes).
    pub external: bool,
}

impl ControlPlane {
    pub fn up(name: &str) -> ControlPlane {
        Self::start(name, None)
    }

    /// The control plane and a real node (`e2e/node.sh`) that has the image archives in
    /// `images` imported, so pods run without a registry. Needs root (network namespaces).
    pub fn up_with_node(name: &str, images: &Path) -> ControlPlane {
        Self::start(name, Some(images))
    }

    fn start(name: &str, node_images: Option<&Path>) -> ControlPlane {
        let dir = std::env::temp_dir().join(format!("sf-e2e-{name}-{}", std::process::id()));
        if let Ok(kubeconfig) = std::env::var("SF_E2E_KUBECONFIG") {
            std::fs::create_dir_all(&dir).expect("run directory");
            return ControlPlane { dir, kubeconfig: kubeconfig.into(), external: true };
        }
        let mut cmd = Command::new(repo_root().join("e2e/control-plane.sh"));
        cmd.arg("up").arg(&dir);
        if let Some(images) = node_images {
            cmd.arg("--node").env("SF_E2E_IMAGES", images);
        }
        let out = cmd.output().expect("control-plane.sh runs");
        let plane = ControlPlane { kubeconfig: dir.join("admin.kubeconfig"), dir, external: false };
        assert!(out.status.success(), "the control plane did not come up:\n{}", text(&out));
        plane
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }

    /// `kubectl <args>`, whatever the outcome.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.command("kubectl").args(args).output().expect("kubectl runs")
    }

    /// `kubectl <args>` that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {}: {}", args.join(" "), text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl <args>` with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command("kubectl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    /// `kubectl get <args> -o json`, or Null when it does not exist.
    pub fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&all);
        if !out.status.success() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// `helm <args>` that must succeed (helm is built from its pinned module).
    pub fn helm_ok(&self, args: &[&str]) -> String {
        let helm = tool("helm");
        let out = self.command(&helm).args(args).output().expect("helm runs");
        assert!(out.status.success(), "helm {}: {}", args.join(" "), text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Write requests (verb, resource, name) the audit log recorded from `user` so far;
    /// `None` on a cluster without our audit log.
    pub fn writes_by(&self, user: &str) -> Option<Vec<(String, String, String)>> {
        let log = std::fs::read_to_string(self.dir.join("audit.log")).ok()?;
        let writes = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == user)
            .map(|e| {
                let r = &e["objectRef"];
                let resource = match r["subresource"].as_str() {
                    Some(sub) => format!("{}/{sub}", r["resource"].as_str().unwrap_or("")),
                    None => r["resource"].as_str().unwrap_or("").to_string(),
                };
                (e["verb"].as_str().unwrap_or("").to_string(), resource, r["name"].as_str().unwrap_or("").to_string())
            })
            .collect();
        Some(writes)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // A failed scenario keeps its logs (operator, API server, audit) for the reader.
        if std::thread::panicking() {
            let keep = repo_root().join("target/e2e-logs").join(self.dir.file_name().unwrap_or_default());
            if std::fs::create_dir_all(&keep).is_ok() {
                for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                    if entry.path().extension().is_some_and(|e| e == "log") {
                        let _ = std::fs::copy(entry.path(), keep.join(entry.file_name()));
                    }
                }
                eprintln!("logs of the failed scenario kept in {}", keep.display());
            }
        }
        if self.external {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            let _ = Command::new(repo_root().join("e2e/control-plane.sh")).arg("down").arg(&self.dir).output();
        }
    }
}

/// The path of a pinned tool, building it when the cache is cold.
pub fn tool(name: &str) -> String {
    let out = Command::new(repo_root().join("e2e/tools/build.sh")).arg(name).output().expect("build.sh runs");
    assert!(out.status.success(), "building {name}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fleet's condition `type_` as (status, reason); empty strings when it has none.
pub fn condition(fleet: &Value, type_: &str) -> (String, String) {
    let c = fleet["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned()).unwrap_or(Value::Null);
    (c["status"].as_str().unwrap_or("").to_string(), c["reason"].as_str().unwrap_or("").to_string())
}

/// Image archives of this build (`images/build.sh` from the debug binaries: the operator,
/// the sidecar, the Debian Redis test image and the pause image) in `target/e2e-images`.
pub fn build_images() -> PathBuf {
    let out_dir = repo_root().join("target/e2e-images");
    let out = Command::new(repo_root().join("images/build.sh"))
        .arg("--bin")
        .arg(repo_root().join("target/debug"))
        .arg("--out")
        .arg(&out_dir)
        .args(["operator", "sidecar", "redis", "pause"])
        .output()
        .expect("images/build.sh runs");
    assert!(out.status.success(), "images/build.sh: {}", text(&out));
    out_dir
}

/// Where `measure!` lines go besides stderr: `make test` prints the file after the tests,
/// which hide a passing test's output.
pub fn measure_log() -> PathBuf {
    repo_root().join("target/e2e-measure.log")
}

/// Records one measured figure: `MEASURE <text>` on stderr and in [`measure_log`].
pub fn record_measure(line: &str) {
    eprintln!("MEASURE {line}");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(measure_log()) {
        let _ = writeln!(f, "MEASURE {line}");
    }
}

/// `measure!("apply to Ready {:.1}s", secs)`: see [`record_measure`].
#[macro_export]
macro_rules! measure {
    ($($arg:tt)*) => { $crate::record_measure(&format!($($arg)*)) };
}

/// Bounded polling and free ports: the one harness's.
pub use socketfleet_harness::ports::free_port;
pub use socketfleet_harness::wait::poll_until;

/// Polls `ok` every 250 ms (each poll here is a `kubectl` run against the API server) until
/// it holds, panicking with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, ok: impl FnMut() -> bool) {
    socketfleet_harness::wait::wait_until_every(what, timeout, Duration::from_millis(250), ok)
}

/// The operator binary running locally with a ServiceAccount's token, so the API server
/// enforces exactly the RBAC the chart grants.
pub struct Operator {
    child: Child,
    pub identity: String,
    pub metrics_port: u16,
}

impl Operator {
    /// Starts `socketfleet-operator` as `system:serviceaccount:<ns>:<sa>`.
    pub fn start(plane: &ControlPlane, namespace: &str, service_account: &str, identity: &str, lease_name: &str) -> Operator {
        let token = plane.kubectl_ok(&["create", "token", service_account, "-n", namespace, "--duration", "2h"]);
        // The admin kubeconfig's cluster (server and CA), with the ServiceAccount as user.
        let view: Value = serde_json::from_str(&plane.kubectl_ok(&["config", "view", "--raw", "--minify", "--flatten", "-o", "json"]))
            .expect("kubeconfig json");
        let cluster = &view["clusters"][0]["cluster"];
        let kubeconfig = plane.dir.join(format!("operator-{identity}.kubeconfig"));
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": cluster["server"], "certificate-authority-data": cluster["certificate-authority-data"]}}],
            "users": [{"name": "operator", "user": {"token": token.trim()}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "operator", "namespace": namespace}}],
            "current-context": "e2e"
        });
        std::fs::write(&kubeconfig, config.to_string()).expect("kubeconfig");
        let metrics_port = free_port();
        let bin = repo_root().join("target/debug/socketfleet-operator");
        let log = std::fs::File::create(plane.dir.join(format!("operator-{identity}.log"))).expect("log file");
        let child = Command::new(bin)
            .env("KUBECONFIG", &kubeconfig)
            .env("SF_OPERATOR_NAMESPACE", namespace)
            .env("SF_OPERATOR_IDENTITY", identity)
            .env("SF_OPERATOR_LEASE", lease_name)
            .env("SF_OPERATOR_LEASE_SECONDS", "6")
            .env("SF_OPERATOR_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("SF_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the operator binary is built (cargo build --workspace)");
        Operator { child, identity: identity.into(), metrics_port }
    }

    /// `socketfleet_operator_leader` from its metrics.
    pub fn is_leader(&self) -> bool {
        metric(self.metrics_port, "socketfleet_operator_leader") == Some(1.0)
    }

    /// Write requests the operator counted itself (`socketfleet_operator_api_writes_total`),
    /// its Lease excluded.
    pub fn writes_except_lease(&self) -> Option<f64> {
        let body = scrape(self.metrics_port)?;
        Some(prometheus_sum(&body, "socketfleet_operator_api_writes_total", |labels| !labels.contains("kind=\"Lease\"")))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn scrape(port: u16) -> Option<String> {
    let reply = blocking(&format!("127.0.0.1:{port}"), Method::GET, "/metrics", None, Duration::from_secs(2)).ok()?;
    (reply.status == 200).then(|| reply.text())
}

/// One value from a Prometheus text endpoint on loopback.
pub fn metric(port: u16, name: &str) -> Option<f64> {
    prometheus_value(&scrape(port)?, name)
}
