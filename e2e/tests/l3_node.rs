//! L3: the product on a real node. The L2 control plane plus a kubelet, containerd, runc,
//! kube-proxy and CoreDNS in a network namespace (`e2e/node.sh`), running the images
//! `images/build.sh` makes from this build. Everything runs in pods: the operator as the
//! chart's Deployment under its RBAC with leader election, the Redis Cluster, the gateway
//! pods with their probes, preStop drain and termination grace. WebSocket clients on the
//! host reach the gateway Service's ClusterIP through the namespace's routes.
//!
//! One scenario, in order: helm install, `examples/chat.yaml` to Ready, traffic across
//! pods, a gateway pod deleted under publishing, a Redis primary's pod deleted under
//! publishing, `shards` 3 → 4 under publishing with 10,000 keys and the operator's leader
//! deleted mid-reshard, the connection autoscaler down, up and down again under publishing,
//! and deleting the fleet. Traffic is `socketfleet-bench run`
//! (the same resuming clients as `make bench`): every acknowledged message must reach every
//! subscriber exactly once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Method;
use serde_json::{Value, json};
use socketfleet_cli::local::balancer::demo_token;
use socketfleet_e2e::{ControlPlane, build_images, condition, measure, poll_until, repo_root, wait_for};
use socketfleet_plumbing::http_client::blocking;

const NS: &str = "socketfleet-system";
const APP_NS: &str = "demo";
const REDIS_IMAGE: &str = "socketfleet/redis-debian:7.0.15";
/// Every kind of child a fleet has besides pods.
const CHILD_KINDS: &str = "statefulsets,deployments,services,configmaps,secrets,pdb";

/// `examples/chat.yaml` as this node can run it: the Debian Redis test image (the node
/// cannot pull the official one), small requests (two cores for ten pods), and persistence
/// off (no storage provisioner on the node; a returning Redis pod comes back empty and the
/// operator heals it in as a replica, which is what step 5 exercises); quick drains and a
/// 10 s scale-down window for step 7.
fn chat_fleet() -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/chat.yaml")).expect("examples/chat.yaml");
    let mut fleet: Value = serde_yaml::from_str(&text).expect("chat.yaml parses");
    let small = json!({"requests": {"cpu": "10m", "memory": "32Mi"}});
    let spec = &mut fleet["spec"];
    spec["redis"]["image"] = json!(REDIS_IMAGE);
    spec["redis"]["persistence"] = json!({"enabled": false});
    spec["redis"]["resources"] = small.clone();
    spec["gateway"]["sidecar"] = json!({"resources": small});
    // Quick drains and a short window, so step 7 scales down twice within a minute.
    spec["drain"] = json!({"timeout": "20s", "reconnectSpread": "2s"});
    spec["autoscaling"]["scaleDownStabilization"] = json!("10s");
    serde_json::to_string(&fleet).expect("json")
}

fn secret_value(plane: &ControlPlane, name: &str, key: &str) -> String {
    let encoded = plane.kubectl_ok(&["get", "secret", name, "-n", APP_NS, "-o", &format!("jsonpath={{.data.{key}}}")]);
    String::from_utf8(STANDARD.decode(encoded.trim()).expect("base64 secret")).expect("a text secret")
}

fn pods(plane: &ControlPlane, ns: &str, selector: &str) -> Vec<Value> {
    plane.get(&["pods", "-n", ns, "-l", selector])["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn restarts(pods: &[Value]) -> u64 {
    pods.iter()
        .flat_map(|p| p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default())
        .map(|c| c["restartCount"].as_u64().unwrap_or(0))
        .sum()
}

/// Connections a gateway pod's sidecar holds, from its admin `/status` (the host routes to
/// the pod network).
fn pod_connections(pod: &Value) -> Option<u64> {
    let ip = pod["status"]["podIP"].as_str()?;
    let reply = blocking(&format!("{ip}:9090"), Method::GET, "/status", None, Duration::from_secs(2)).ok()?;
    serde_json::from_slice::<Value>(&reply.body).ok()?["connections"].as_u64()
}

/// What one `socketfleet-bench run` does.
struct Load {
    clients: u32,
    channels: u32,
    publishers: u32,
    rate: u32,
    seconds: u64,
    /// Channel prefix: two runs side by side never see each other's messages.
    prefix: &'static str,
}

/// The load of steps 3 to 5: 60 subscribers over 6 channels, 2 publishers at 50 publishes/s.
fn steady(seconds: u64) -> Load {
    Load { clients: 60, channels: 6, publishers: 2, rate: 50, seconds, prefix: "bench" }
}

/// `socketfleet-bench run` against the gateway Service, the shell command `event` at
/// `event_at` s.
fn traffic(plane: &ControlPlane, addr: &str, token: &str, load: Load, event: Option<(u64, String)>) -> Child {
    let mut cmd = Command::new(repo_root().join("target/debug/socketfleet-bench"));
    cmd.args(["run", "--system", "socketfleet", "--addrs", addr, "--token", token, "--channel-prefix", load.prefix])
        .args(["--clients", &load.clients.to_string(), "--channels", &load.channels.to_string()])
        .args(["--publishers", &load.publishers.to_string(), "--fixed", &format!("{}:{}", load.rate, load.seconds)])
        .env("KUBECONFIG", &plane.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((at, command)) = event {
        cmd.args(["--event-at", &at.to_string(), "--event", &format!("{command} >/dev/null 2>&1")]);
    }
    cmd.spawn().expect("socketfleet-bench is built (cargo build --workspace)")
}

/// The bench's report; asserts what the guarantee promises: every acknowledged message
/// delivered to every subscriber once.
fn report_of(child: Child, what: &str) -> Value {
    let out = child.wait_with_output().expect("socketfleet-bench finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: socketfleet-bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: report: {e}: {stderr}"));
    measure!(
        "{what}: published {} acknowledged {} refused {} unconfirmed {} missing {} duplicates {} reconnects {} all back after {}s",
        report["published"],
        report["acknowledged"],
        report["refused"],
        report["unconfirmed"],
        report["missing"],
        report["duplicates"],
        report["fixed"]["recovery"]["reconnects"],
        report["fixed"]["recovery"]["all_connected_again_s"],
    );
    assert!(report["acknowledged"].as_u64().unwrap_or(0) > 0, "{what}: nothing acknowledged: {report}");
    assert_eq!(report["missing"], 0, "{what}: acknowledged messages lost: {report}");
    assert_eq!(report["duplicates"], 0, "{what}: duplicates: {report}");
    assert_eq!(report["clients_missing"], 0, "{what}: {report}");
    report
}

/// `key:<i>` = `value:<i>` for `0..n` in the fleet's Redis Cluster, written and read with
/// `redis-cli -c` from the host (cluster nodes announce their pod IPs, routed to the node).
struct ClusterKeys<'a> {
    plane: &'a ControlPlane,
    password: String,
    n: usize,
}

impl ClusterKeys<'_> {
    fn cli(&self, commands: String) -> String {
        let redis = pods(self.plane, APP_NS, "app.kubernetes.io/component=redis");
        let ip = redis.iter().find(|p| is_ready(p)).and_then(|p| p["status"]["podIP"].as_str()).expect("a Ready Redis pod").to_string();
        let mut child = Command::new("redis-cli")
            .args(["-c", "-h", &ip, "-p", "6379"])
            .env("REDISCLI_AUTH", &self.password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, commands.as_bytes()));
        let out = child.wait_with_output().expect("redis-cli runs");
        writer.join().expect("writer").expect("commands written");
        assert!(out.status.success(), "redis-cli: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write(&self) {
        let out = self.cli((0..self.n).map(|i| format!("SET key:{i} value:{i}\n")).collect());
        assert_eq!(out.lines().filter(|l| *l == "OK").count(), self.n, "every SET answered OK");
    }

    fn readable(&self) -> usize {
        let out = self.cli((0..self.n).map(|i| format!("GET key:{i}\n")).collect());
        // `-c` tells each redirect it follows on a line of its own.
        let replies = out.lines().filter(|l| !l.starts_with("-> Redirected"));
        replies.enumerate().filter(|(i, l)| *l == format!("value:{i}")).count()
    }
}

/// The fleet's Events' reasons, each as many times as it happened (a repeated Event is one
/// object with a count).
fn fleet_events(plane: &ControlPlane) -> Vec<String> {
    let items = plane.get(&["events", "-n", APP_NS, "--field-selector", "involvedObject.kind=SocketFleet"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for e in &items {
        let Some(reason) = e["reason"].as_str() else { continue };
        let times = e["series"]["count"].as_u64().or(e["count"].as_u64()).unwrap_or(1).max(1);
        out.extend(std::iter::repeat_n(reason.to_string(), times as usize));
    }
    out
}

fn gateway_ready(plane: &ControlPlane) -> usize {
    pods(plane, APP_NS, "app.kubernetes.io/component=gateway").iter().filter(|p| is_ready(p)).count()
}

/// The autoscaler's decisions as `status.autoscaler` told them, each change once.
#[derive(Default)]
struct Trace {
    started: Option<Instant>,
    lines: Vec<String>,
}

impl Trace {
    /// Polls the chat fleet's `status.autoscaler` each second, noting each new decision,
    /// until `done` holds (panics after `limit`).
    fn until(&mut self, plane: &ControlPlane, what: &str, limit: Duration, done: impl Fn(&Value) -> bool) {
        let started = *self.started.get_or_insert_with(Instant::now);
        let deadline = Instant::now() + limit;
        loop {
            let status = plane.get(&["socketfleet", "chat", "-n", APP_NS])["status"]["autoscaler"].clone();
            let line = format!(
                "{} replicas {} connections {} spread {}: {}",
                status["lastDecision"].as_str().unwrap_or("?"),
                status["replicas"],
                status["connections"],
                status["spread"].as_str().unwrap_or("-"),
                status["reason"].as_str().unwrap_or("")
            );
            if self.lines.last().is_none_or(|l| !l.ends_with(&line)) {
                self.lines.push(format!("{:>5.1}s {line}", started.elapsed().as_secs_f64()));
            }
            if done(&status) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: not within {limit:?}; decisions:\n  {}", self.lines.join("\n  "));
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[test]
fn the_product_on_a_real_node() {
    let suite = Instant::now();
    let images = build_images();
    let plane = ControlPlane::up_with_node("node", &images);
    measure!("images and node up in {:.1}s", suite.elapsed().as_secs_f64());

    // 1. helm install: the operator in-cluster, two replicas, leader election.
    let chart = repo_root().join("charts/socketfleet").display().to_string();
    let values = "replicaCount=2,leaderElection.leaseSeconds=6";
    plane.helm_ok(&["install", "socketfleet", &chart, "-n", NS, "--create-namespace", "--set", values, "--wait", "--timeout", "180s"]);
    let operators = pods(&plane, NS, "app.kubernetes.io/name=socketfleet-operator");
    assert_eq!(operators.iter().filter(|p| is_ready(p)).count(), 2, "two operator pods Ready");
    for p in &operators {
        let c = &p["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(p["spec"]["securityContext"]["runAsUser"], 65532);
    }
    let mut holder = String::new();
    wait_for("an operator pod to hold the Lease", Duration::from_secs(60), || {
        holder = plane.get(&["lease", "socketfleet", "-n", NS])["spec"]["holderIdentity"].as_str().unwrap_or("").to_string();
        operators.iter().any(|p| p["metadata"]["name"] == holder.as_str())
    });
    assert!(!plane.get(&["pdb", "socketfleet", "-n", NS]).is_null(), "the chart's PDB for two replicas");

    // 2. examples/chat.yaml to Ready.
    plane.kubectl_ok(&["create", "namespace", APP_NS]);
    let applied = Instant::now();
    let out = plane.kubectl_stdin(&["apply", "-n", APP_NS, "-f", "-"], &chat_fleet());
    assert!(out.status.success(), "apply chat: {}", String::from_utf8_lossy(&out.stderr));
    let fleet = || plane.get(&["socketfleet", "chat", "-n", APP_NS]);
    wait_for("chat Ready", Duration::from_secs(240), || condition(&fleet(), "Ready").0 == "True");
    let to_ready = applied.elapsed();
    measure!("apply to Ready {:.1}s", to_ready.as_secs_f64());
    let redis_pods = pods(&plane, APP_NS, "app.kubernetes.io/component=redis");
    assert_eq!(redis_pods.iter().filter(|p| is_ready(p)).count(), 6, "6 Redis pods Ready");
    let gateways = pods(&plane, APP_NS, "app.kubernetes.io/component=gateway");
    assert_eq!(gateways.iter().filter(|p| is_ready(p)).count(), 3, "3 gateway pods Ready");
    let status = fleet()["status"].clone();
    assert_eq!(status["redis"]["slotsCovered"], 16384, "{status}");

    let service = plane.get(&["service", "chat", "-n", APP_NS]);
    let addr = format!("{}:{}", service["spec"]["clusterIP"].as_str().expect("ClusterIP"), service["spec"]["ports"][0]["port"]);
    // Signed as local mode signs its demo tokens: any channel, for a day.
    let jwt = demo_token(&secret_value(&plane, "chat-jwt", "secret"), "l3");

    // kube-proxy programs the new Service a moment after its pods are Ready.
    wait_for("the gateway Service to answer", Duration::from_secs(60), || {
        blocking(&addr, Method::GET, "/ws", None, Duration::from_secs(2)).is_ok_and(|r| r.status == 426)
    });

    // 3. Clients through the Service land on every pod; messages cross pods.
    let mut run = traffic(&plane, &addr, &jwt, steady(15), None);
    let mut spread = Vec::new();
    let on_every_pod = poll_until(Duration::from_secs(30), || {
        spread = gateways.iter().map(pod_connections).collect();
        spread.iter().all(|c| c.is_some_and(|c| c > 0)) || matches!(run.try_wait(), Ok(Some(_)))
    }) && spread.iter().all(|c| c.is_some_and(|c| c > 0));
    if !on_every_pod {
        let _ = run.kill();
        let out = run.wait_with_output().expect("socketfleet-bench");
        panic!("clients not on every gateway pod ({spread:?}); the bench said: {}", String::from_utf8_lossy(&out.stderr));
    }
    measure!("connections per gateway pod {spread:?}");
    // The leader exports them for an HPA or KEDA (autoscaling.mode: external).
    let leader_ip = operators.iter().find(|p| p["metadata"]["name"] == holder.as_str()).and_then(|p| p["status"]["podIP"].as_str());
    let leader_metrics = format!("{}:8080", leader_ip.expect("the leader pod's IP"));
    let fleet_connections = || {
        let reply = blocking(&leader_metrics, Method::GET, "/metrics", None, Duration::from_secs(2)).ok()?;
        let text = reply.text();
        let line =
            text.lines().find(|l| l.starts_with(r#"socketfleet_operator_fleet_connections{fleet_namespace="demo",fleet="chat"} "#))?;
        line.rsplit(' ').next()?.parse::<u64>().ok()
    };
    let mut exported = None;
    assert!(
        poll_until(Duration::from_secs(20), || {
            exported = fleet_connections();
            exported.is_some_and(|c| c >= 50)
        }),
        "the operator's fleet_connections metric follows the live total (60 clients): {exported:?}"
    );
    measure!("operator metric fleet_connections {exported:?}");
    report_of(run, "across pods");

    // 4. A gateway pod deleted under publishing: preStop drains it, clients resume elsewhere.
    let victim = gateways[0]["metadata"]["name"].as_str().expect("pod name").to_string();
    let run = traffic(&plane, &addr, &jwt, steady(40), Some((5, format!("kubectl delete pod -n {APP_NS} {victim} --wait=false"))));
    let report = report_of(run, "gateway pod deleted");
    assert!(report["fixed"]["recovery"]["reconnects"].as_u64().unwrap_or(0) > 0, "the drained pod's clients moved: {report}");
    wait_for("3 gateway pods Ready again", Duration::from_secs(120), || {
        pods(&plane, APP_NS, "app.kubernetes.io/component=gateway").iter().filter(|p| is_ready(p)).count() == 3
    });

    // 5. A Redis primary's pod deleted under publishing: the replica takes over, the pod
    // returns (empty: no persistence) and the operator heals it in as a replica.
    let events_before = fleet_events(&plane).len();
    let run = traffic(&plane, &addr, &jwt, steady(45), Some((5, format!("kubectl delete pod -n {APP_NS} chat-redis-0 --wait=false"))));
    report_of(run, "Redis primary pod deleted");
    let healed = Instant::now();
    wait_for("the cluster whole again (3 primaries, 3 replicas)", Duration::from_secs(180), || {
        let s = fleet()["status"].clone();
        condition(&fleet(), "Ready").0 == "True" && s["redis"]["primaries"] == 3 && s["redis"]["replicas"] == 3
    });
    measure!("Redis healed {:.1}s after the traffic ended", healed.elapsed().as_secs_f64());
    let events = fleet_events(&plane);
    assert!(events.len() > events_before, "the heal is told in Events: {events:?}");
    assert!(events.iter().any(|r| r == "RedisReplicaAttached" || r == "RedisNodeMet"), "{events:?}");

    // 6. shards 3 → 4 under publishing, holding 10,000 keys; the operator's leader pod is
    // deleted mid-reshard, and the other replica resumes the journaled operation.
    let keys = ClusterKeys { plane: &plane, password: secret_value(&plane, "chat-redis", "password"), n: 10_000 };
    keys.write();
    assert_eq!(keys.readable(), keys.n, "every key written before the reshard");
    let run = traffic(&plane, &addr, &jwt, steady(60), None);
    std::thread::sleep(Duration::from_secs(5));
    let resharding = Instant::now();
    plane.kubectl_ok(&["patch", "socketfleet", "chat", "-n", APP_NS, "--type", "merge", "-p", r#"{"spec":{"redis":{"shards":4}}}"#]);
    let reshard = || fleet()["status"]["operations"].as_array().and_then(|o| o.last().cloned()).unwrap_or(Value::Null);
    let mut seen = Value::Null;
    wait_for("the reshard moving slots", Duration::from_secs(240), || {
        seen = reshard();
        assert_ne!(seen["state"], "Succeeded", "finished before the leader could be deleted: {seen}");
        seen["state"] == "Running" && seen["slotsMoved"].as_u64().is_some_and(|n| n > 0)
    });
    let leader = plane.get(&["lease", "socketfleet", "-n", NS])["spec"]["holderIdentity"].as_str().unwrap_or("").to_string();
    measure!(
        "reshard 3→4 moving ({} slots moved) {:.1}s after the patch; deleting the leader {leader}",
        seen["slotsMoved"],
        resharding.elapsed().as_secs_f64()
    );
    plane.kubectl_ok(&["delete", "pod", "-n", NS, &leader, "--wait=false"]);
    wait_for("the reshard finished", Duration::from_secs(300), || reshard()["state"] == "Succeeded");
    let took = resharding.elapsed();
    wait_for("4 shards Ready", Duration::from_secs(180), || {
        let f = fleet();
        let r = &f["status"]["redis"];
        condition(&f, "Ready").0 == "True" && r["primaries"] == 4 && r["replicas"] == 4 && r["slotsCovered"] == 16384
    });
    let new_leader = plane.get(&["lease", "socketfleet", "-n", NS])["spec"]["holderIdentity"].as_str().unwrap_or("").to_string();
    assert_ne!(new_leader, leader, "another operator pod took over");
    measure!(
        "reshard 3→4 under publishing in {:.1}s, leader {leader} deleted mid-way, resumed by {new_leader}; journal {}",
        took.as_secs_f64(),
        reshard()
    );
    report_of(run, "reshard 3→4 with the leader deleted");
    assert_eq!(keys.readable(), keys.n, "every key readable after the reshard");
    measure!("keys: {} of {} before and after the reshard", keys.n, keys.n);
    assert!(fleet_events(&plane).iter().any(|r| r == "RedisSlotsMoved"), "the moves are told in Events");

    // 7. The builtin autoscaler on live connections (kubectl scale is refused while it
    // scales). At 25 connections per pod, within 1..3: no clients → down to 1, one pod at a
    // time; 60 clients → up to 3 at once; they leave while 15 others keep publishing → down
    // to 1 again, each victim drained before it goes, nothing lost.
    let out = plane.kubectl(&["scale", "socketfleet", "chat", "-n", APP_NS, "--replicas", "4"]);
    assert!(!out.status.success(), "kubectl scale of an autoscaled fleet is refused");
    let scaling = r#"{"spec":{"gateway":{"replicas":{"min":1,"max":3}},"autoscaling":{"targetConnectionsPerPod":25}}}"#;
    plane.kubectl_ok(&["patch", "socketfleet", "chat", "-n", APP_NS, "--type", "merge", "-p", scaling]);
    let mut trace = Trace::default();
    let idle_down = Instant::now();
    trace.until(&plane, "scaled down to 1 pod without clients", Duration::from_secs(120), |s| {
        s["replicas"] == 1 && gateway_ready(&plane) == 1
    });
    measure!("no clients: 3 → 1 pods in {:.1}s", idle_down.elapsed().as_secs_f64());

    let ramp = Instant::now();
    let crowd =
        traffic(&plane, &addr, &jwt, Load { clients: 60, channels: 6, publishers: 1, rate: 10, seconds: 80, prefix: "crowd" }, None);
    trace
        .until(&plane, "scaled up to 3 pods for 60 clients", Duration::from_secs(90), |s| s["replicas"] == 3 && gateway_ready(&plane) == 3);
    measure!("60 clients: 1 → 3 pods Ready in {:.1}s", ramp.elapsed().as_secs_f64());
    // The new pods start empty; rebalancing moves clients onto them, losslessly.
    let up = Instant::now();
    trace.until(&plane, "connections spread within 20% of the mean", Duration::from_secs(60), |s| {
        s["pods"].as_array().is_some_and(|p| p.len() == 3)
            && s["spread"].as_str().and_then(|x| x.parse::<f64>().ok()).is_some_and(|x| x <= 1.2)
    });
    let spread_now: Vec<Option<u64>> = pods(&plane, APP_NS, "app.kubernetes.io/component=gateway").iter().map(pod_connections).collect();
    measure!("rebalanced {:.1}s after the scale-up: connections per pod {spread_now:?}", up.elapsed().as_secs_f64());
    let stayers =
        traffic(&plane, &addr, &jwt, Load { clients: 15, channels: 3, publishers: 1, rate: 20, seconds: 110, prefix: "stay" }, None);
    let report = report_of(crowd, "60 clients through the scale-up and rebalancing");
    assert!(report["disconnects"].as_u64().unwrap_or(0) > 0, "rebalancing moved some of the crowd: {report}");
    let leave = Instant::now();
    trace.until(&plane, "scaled down to 1 pod under publishing", Duration::from_secs(100), |s| {
        s["replicas"] == 1 && gateway_ready(&plane) == 1
    });
    measure!("crowd gone: 3 → 1 pods in {:.1}s", leave.elapsed().as_secs_f64());
    let report = report_of(stayers, "15 clients publishing through the scale-down");
    assert!(report["disconnects"].as_u64().unwrap_or(0) > 0, "the drained pods' clients moved: {report}");
    measure!("autoscaler decisions:\n  {}", trace.lines.join("\n  "));
    let reasons = fleet_events(&plane);
    let count = |r: &str| reasons.iter().filter(|e| *e == r).count();
    assert!(count("ScaledUp") >= 1 && count("ScaledDown") >= 4 && count("DrainingPod") >= 4, "{reasons:?}");
    assert_eq!(count("DrainTimedOut"), 0, "every victim drained before it was removed: {reasons:?}");
    assert!(count("Rebalancing") >= 1 && count("Rebalanced") >= 1, "{reasons:?}");
    let all = pods(&plane, APP_NS, "app.kubernetes.io/instance=chat");
    measure!("container restarts over the scenario {}", restarts(&all));
    assert_eq!(restarts(&pods(&plane, APP_NS, "app.kubernetes.io/component=gateway")), 0, "no gateway container restarted");
    plane.kubectl_ok(&["delete", "socketfleet", "chat", "-n", APP_NS, "--wait=true", "--timeout", "60s"]);
    wait_for("every child of chat collected", Duration::from_secs(180), || {
        pods(&plane, APP_NS, "app.kubernetes.io/instance=chat").is_empty()
            && plane.get(&[CHILD_KINDS, "-n", APP_NS, "-l", "app.kubernetes.io/instance=chat"])["items"]
                .as_array()
                .is_some_and(|i| i.is_empty())
    });
    assert!(
        plane.get(&["pvc", "-n", APP_NS])["items"].as_array().is_some_and(|i| i.is_empty()),
        "persistence off: no PersistentVolumeClaims"
    );
    measure!("L3 suite {:.1}s", suite.elapsed().as_secs_f64());
}
