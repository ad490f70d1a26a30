//! L2: the operator against a real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler built from pinned modules), installed the way a
//! platform team installs it. No node: pods stay Pending, and the status must say so.
//!
//! One scenario, in order, because each step builds on the last: helm install, CRD and
//! `kubectl explain`, the operator under the chart's RBAC, every example and its children,
//! invalid manifests, a minute of steady state without writes, scale through the scale
//! subresource, leader handover, garbage collection, and the plain-manifest install.

use socketfleet_api::settings;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use socketfleet_e2e::{ControlPlane, Operator, condition, measure, repo_root, wait_for};

const NS: &str = "socketfleet-system";
const SA: &str = "socketfleet";
const LEASE: &str = "socketfleet";
const APP_NS: &str = "demo";

fn example(name: &str) -> String {
    repo_root().join("examples").join(name).display().to_string()
}

fn owned_by(obj: &Value, fleet: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| o.iter().any(|r| r["uid"] == fleet["metadata"]["uid"] && r["kind"] == "SocketFleet" && r["controller"] == true))
}

fn env_of(container: &Value) -> Vec<String> {
    container["env"].as_array().map(|e| e.iter().filter_map(|v| v["name"].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn the_operator_on_a_real_control_plane() {
    let started = Instant::now();
    let plane = ControlPlane::up("operator");
    measure!("control plane up in {:.1}s", started.elapsed().as_secs_f64());
    let chart = repo_root().join("charts/socketfleet").display().to_string();

    // 1. helm lint and install; the CRD becomes Established; `kubectl explain` has the docs.
    plane.helm_ok(&["lint", &chart, "--strict"]);
    plane.helm_ok(&["install", "socketfleet", &chart, "--namespace", NS, "--create-namespace"]);
    plane.kubectl_ok(&["wait", "--for", "condition=Established", "crd/socketfleets.socketfleet.io", "--timeout", "60s"]);
    // The API server publishes the CRD's OpenAPI a moment after it is Established.
    let mut explain = String::new();
    wait_for("kubectl explain socketfleet.spec", Duration::from_secs(60), || {
        let out = plane.kubectl(&["explain", "socketfleet.spec"]);
        explain = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    assert!(explain.contains("The gateway pods") && explain.contains("resumeWindow"), "{explain}");
    let explain = plane.kubectl_ok(&["explain", "socketfleet.spec.redis.mode"]);
    assert!(explain.contains("cannot be changed") || explain.contains("Cannot be changed"), "{explain}");

    // 2. The operator runs with the chart's ServiceAccount: its RBAC is what is enforced.
    let mut leader = Operator::start(&plane, NS, SA, "op-a", LEASE);
    wait_for("op-a to lead", Duration::from_secs(30), || leader.is_leader());

    // 3. Every example, and what the operator must make of it.
    plane.kubectl_ok(&["create", "namespace", APP_NS]);
    for name in ["minimal.yaml", "chat.yaml", "checkboxes.yaml", "sentinel.yaml", "external.yaml"] {
        plane.kubectl_ok(&["apply", "-n", APP_NS, "-f", &example(name)]);
    }
    let fleet = |name: &str| plane.get(&["socketfleet", name, "-n", APP_NS]);
    // The external example references Secrets that do not exist yet: the status says so.
    wait_for("external to report its missing Secret", Duration::from_secs(60), || {
        condition(&fleet("external"), "Degraded") == ("True".into(), "SecretMissing".into())
    });
    plane.kubectl_ok(&["create", "secret", "generic", "my-redis", "-n", APP_NS, "--from-literal=password=x"]);
    plane.kubectl_ok(&["create", "secret", "generic", "jwt-public-key", "-n", APP_NS, "--from-literal=key.pem=x"]);

    wait_for("chat's gateway Deployment", Duration::from_secs(60), || !plane.get(&["deployment", "chat-gateway", "-n", APP_NS]).is_null());
    let chat = fleet("chat");
    for (kind, name) in [
        ("secret", "chat-redis"),
        ("secret", "chat-resume"),
        ("secret", "chat-jwt"),
        ("configmap", "chat-redis"),
        ("service", "chat-redis-headless"),
        ("service", "chat-redis"),
        ("service", "chat"),
        ("statefulset", "chat-redis"),
        ("deployment", "chat-gateway"),
        ("poddisruptionbudget", "chat-redis"),
        ("poddisruptionbudget", "chat-gateway"),
    ] {
        let obj = plane.get(&[kind, name, "-n", APP_NS]);
        assert!(!obj.is_null(), "{kind}/{name} exists");
        assert!(owned_by(&obj, &chat), "{kind}/{name} is owned by the fleet");
        assert_eq!(obj["metadata"]["labels"]["app.kubernetes.io/instance"], "chat", "{kind}/{name} labels");
        assert_eq!(obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "socketfleet-operator");
    }
    let sts = plane.get(&["statefulset", "chat-redis", "-n", APP_NS]);
    assert_eq!(sts["spec"]["replicas"], 6);
    assert!(sts["spec"]["volumeClaimTemplates"].as_array().is_some_and(|v| !v.is_empty()), "persistence: claims");
    let deployment = plane.get(&["deployment", "chat-gateway", "-n", APP_NS]);
    let sidecar = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(sidecar["name"], "sidecar");
    let env = env_of(sidecar);
    for var in [
        settings::ENV_REDIS_MODE,
        settings::ENV_REDIS_ADDRS,
        settings::ENV_REDIS_PASSWORD,
        settings::ENV_RESUME_KEY,
        settings::ENV_JWT_SECRET,
        settings::ENV_DRAIN_TIMEOUT,
    ] {
        assert!(env.contains(&var.to_string()), "sidecar env {var}: {env:?}");
    }
    assert_eq!(sidecar["lifecycle"]["preStop"]["httpGet"]["path"], "/drain/prestop");
    assert_eq!(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 75);
    // The sentinel example has Sentinels; the external one has no Redis of ours.
    assert_eq!(plane.get(&["statefulset", "sentinel-chat-sentinel", "-n", APP_NS])["spec"]["replicas"], 3);
    assert!(plane.get(&["statefulset", "external-redis", "-n", APP_NS]).is_null());

    // Status tells the truth: without a node nothing runs, so nothing is Ready.
    for name in ["minimal", "chat", "checkboxes", "sentinel-chat", "external"] {
        wait_for(&format!("{name}'s status"), Duration::from_secs(60), || {
            let f = fleet(name);
            f["status"]["observedGeneration"] == f["metadata"]["generation"] && condition(&f, "Degraded").1 == "NoErrors"
        });
        let f = fleet(name);
        assert_eq!(condition(&f, "Ready").0, "False", "{name}: no pod can run");
        if !plane.external {
            // No node here; on a cluster with nodes Redis may really come up.
            let want_redis = if name == "external" { ("True", "ExternalRedis") } else { ("False", "RedisPodsPending") };
            assert_eq!(condition(&f, "RedisReady"), (want_redis.0.to_string(), want_redis.1.to_string()), "{name}");
            assert_eq!(condition(&f, "Progressing").0, "True", "{name}");
        }
    }
    let printed = plane.kubectl_ok(&["get", "sfleet", "-n", APP_NS]);
    assert!(
        printed.contains("READY") && printed.contains("PODS") && printed.contains("CONNECTIONS") && printed.contains("external"),
        "{printed}"
    );
    // Actual pods, not the desired count: without a node none is ready.
    assert!(printed.lines().any(|l| l.starts_with("chat ") && l.contains(" 0/")), "{printed}");
    eprintln!("{printed}");

    // 4. Invalid manifests are refused by the API server, each naming its rule.
    let invalid_dir = repo_root().join("e2e/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&invalid_dir).expect("e2e/invalid").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(files.len() >= 10);
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let expect = text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).expect("an expect line");
        let out = plane.kubectl_stdin(&["apply", "-n", APP_NS, "-f", "-"], &text);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", file.display());
        assert!(err.contains(expect), "{}: want {expect:?}, got {err}", file.display());
    }
    // An immutable field cannot change.
    let out =
        plane.kubectl(&["patch", "sfleet", "chat", "-n", APP_NS, "--type", "merge", "-p", r#"{"spec":{"redis":{"mode":"sentinel"}}}"#]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("redis.mode cannot be changed"));

    // 5. Steady state: a minute without a single write from the operator (its Lease aside),
    // by the API server's audit log and by the operator's own count.
    let user = format!("system:serviceaccount:{NS}:{SA}");
    std::thread::sleep(Duration::from_secs(10));
    let audited_before = plane.writes_by(&user).map(|w| w.len());
    let counted_before = leader.writes_except_lease().expect("operator metrics");
    std::thread::sleep(Duration::from_secs(60));
    let counted = leader.writes_except_lease().expect("operator metrics") - counted_before;
    if let (Some(before), Some(now)) = (audited_before, plane.writes_by(&user)) {
        let writes: Vec<_> = now.into_iter().skip(before).filter(|(_, resource, _)| resource != "leases").collect();
        measure!("steady state: {} operator writes in 60 s by the audit log (leases excluded)", writes.len());
        assert!(writes.is_empty(), "writes in steady state: {writes:?}");
    }
    measure!("steady state: {counted} operator writes in 60 s by its own metrics (leases excluded)");
    assert_eq!(counted, 0.0, "the operator counted writes in steady state");

    // 5b. Hand edits of what the operator owns are put back within 10 s, and deleted
    // children of every kind come back; then the fleet is quiet again.
    let repaired = |what: &str, ok: &dyn Fn() -> bool| {
        let t = Instant::now();
        wait_for(what, Duration::from_secs(10), ok);
        measure!("drift repaired in {:.1}s: {what}", t.elapsed().as_secs_f64());
    };
    let gateway = || plane.get(&["deployment", "chat-gateway", "-n", APP_NS]);
    let desired = gateway()["spec"]["replicas"].clone();
    assert_eq!(desired, 3, "chat.yaml's replicas.min");
    plane.kubectl_ok(&["scale", "deployment/chat-gateway", "-n", APP_NS, "--replicas=7"]);
    repaired("kubectl scale deploy/chat-gateway --replicas=7 reverted", &|| gateway()["spec"]["replicas"] == desired);
    plane.kubectl_ok(&["set", "image", "deployment/chat-gateway", "-n", APP_NS, "sidecar=evil/sidecar:latest"]);
    repaired("kubectl set image sidecar=evil/sidecar:latest reverted", &|| {
        gateway()["spec"]["template"]["spec"]["containers"][0]["image"] == "socketfleet/sidecar:0.1.0"
    });
    plane.kubectl_ok(&["set", "env", "deployment/chat-gateway", "-n", APP_NS, "-c", "sidecar", "SF_HISTORY_SIZE=1"]);
    repaired("an env value of the sidecar reverted", &|| {
        gateway()["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|v| v["name"] == settings::ENV_HISTORY_SIZE && v["value"] == "1000"))
    });
    plane.kubectl_ok(&[
        "patch",
        "service",
        "chat",
        "-n",
        APP_NS,
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/port","value":81}]"#,
    ]);
    repaired("the client Service's port reverted", &|| plane.get(&["service", "chat", "-n", APP_NS])["spec"]["ports"][0]["port"] == 80);
    plane.kubectl_ok(&["patch", "pdb", "chat-gateway", "-n", APP_NS, "--type", "merge", "-p", r#"{"spec":{"maxUnavailable":5}}"#]);
    repaired("the gateway PDB reverted", &|| plane.get(&["pdb", "chat-gateway", "-n", APP_NS])["spec"]["maxUnavailable"] == 1);
    for (kind, name) in [("service", "chat"), ("configmap", "chat-redis"), ("pdb", "chat-redis"), ("statefulset", "chat-redis")] {
        let uid = plane.get(&[kind, name, "-n", APP_NS])["metadata"]["uid"].clone();
        plane.kubectl_ok(&["delete", kind, name, "-n", APP_NS, "--wait=true"]);
        repaired(&format!("deleted {kind}/{name} recreated"), &|| {
            let now = plane.get(&[kind, name, "-n", APP_NS]);
            !now.is_null() && now["metadata"]["uid"] != uid
        });
    }
    // A deleted generated Secret comes back with the value the running pods use, never a
    // new password, and an Event says so.
    let password = plane.get(&["secret", "chat-redis", "-n", APP_NS])["data"]["password"].clone();
    plane.kubectl_ok(&["delete", "secret", "chat-redis", "-n", APP_NS, "--wait=true"]);
    repaired("deleted secret/chat-redis recreated", &|| !plane.get(&["secret", "chat-redis", "-n", APP_NS]).is_null());
    assert_eq!(plane.get(&["secret", "chat-redis", "-n", APP_NS])["data"]["password"], password, "the same password, not a new one");
    let events = plane.kubectl_ok(&["get", "events", "-n", APP_NS, "--field-selector", "reason=SecretRestored", "-o", "json"]);
    assert!(events.contains("Secret chat-redis was deleted; recreated with the value the running pods use"), "{events}");
    std::thread::sleep(Duration::from_secs(5));
    let settled = leader.writes_except_lease().expect("operator metrics");
    std::thread::sleep(Duration::from_secs(20));
    assert_eq!(leader.writes_except_lease().expect("operator metrics") - settled, 0.0, "quiet again after the repairs");

    // 5c. Two fleets claiming one name: `chat-redis` wants Service chat-redis, which is
    // chat's Redis Service. It is reported, not fought over.
    let rival = std::fs::read_to_string(example("minimal.yaml")).expect("minimal.yaml").replace("name: minimal", "name: chat-redis");
    assert!(rival.contains("name: chat-redis"), "the rival's name");
    plane.kubectl_stdin(&["apply", "-n", APP_NS, "-f", "-"], &rival);
    wait_for("the rival fleet to report the conflict", Duration::from_secs(30), || {
        condition(&fleet("chat-redis"), "Degraded") == ("True".into(), "NameConflict".into())
    });
    let message = fleet("chat-redis")["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Degraded").cloned())
        .map(|c| c["message"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    measure!("name conflict message: {message}");
    assert!(message.contains("Service chat-redis is already controlled by SocketFleet chat") && !message.contains("Status {"), "{message}");
    let version = plane.get(&["service", "chat-redis", "-n", APP_NS])["metadata"]["resourceVersion"].clone();
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(plane.get(&["service", "chat-redis", "-n", APP_NS])["metadata"]["resourceVersion"], version, "nobody took it");
    assert!(owned_by(&plane.get(&["service", "chat-redis", "-n", APP_NS]), &fleet("chat")), "chat keeps its Service");
    plane.kubectl_ok(&["delete", "sfleet", "chat-redis", "-n", APP_NS, "--wait=true"]);

    // 5d. What the API server admits, the sidecar reads: compound and zero durations and a
    // short resume window, in the env of the Deployment the operator wrote.
    let compound = "apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: compound}\nspec:\n  auth: {mode: none}\n  \
                    drain: {timeout: 1m30s, reconnectSpread: 0s}\n  resumeWindow: 15s\n  channels: {historyTtl: 59m57s}\n";
    let out = plane.kubectl_stdin(&["apply", "-n", APP_NS, "-f", "-"], compound);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("compound's gateway", Duration::from_secs(30), || !plane.get(&["deployment", "compound-gateway", "-n", APP_NS]).is_null());
    let container = plane.get(&["deployment", "compound-gateway", "-n", APP_NS])["spec"]["template"]["spec"]["containers"][0].clone();
    let env: std::collections::HashMap<String, String> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["name"].as_str().unwrap_or("").to_string(), e["value"].as_str().map(str::to_string).unwrap_or_else(|| "s".repeat(64))))
        .collect();
    let parsed = socketfleet_api::settings::SidecarSettings::from_lookup(&|k| env.get(k).cloned());
    assert!(parsed.is_ok(), "the sidecar would exit 64: {parsed:?}");
    assert_eq!(env[settings::ENV_DRAIN_TIMEOUT], "1m30s");
    plane.kubectl_ok(&["delete", "sfleet", "compound", "-n", APP_NS, "--wait=true"]);
    // shards changes on a running fleet (an unset shards is 3): the StatefulSet grows by
    // whole shards; below 3 is refused.
    let pods_before = plane.get(&["statefulset", "minimal-redis", "-n", APP_NS])["spec"]["replicas"].as_i64().expect("replicas");
    plane.kubectl_ok(&["patch", "sfleet", "minimal", "-n", APP_NS, "--type", "merge", "-p", r#"{"spec":{"redis":{"shards":6}}}"#]);
    wait_for("minimal-redis grown to 6 shards", Duration::from_secs(30), || {
        plane.get(&["statefulset", "minimal-redis", "-n", APP_NS])["spec"]["replicas"].as_i64() == Some(pods_before * 2)
    });
    let out = plane.kubectl(&["patch", "sfleet", "minimal", "-n", APP_NS, "--type", "merge", "-p", r#"{"spec":{"redis":{"shards":2}}}"#]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("at least 3 shards"), "6 to 2");

    // 6. kubectl scale drives the gateway through the scale subresource, within min..max;
    // on a fleet the builtin autoscaler scales (chat), it is refused with the way out.
    plane.kubectl_ok(&["scale", "sfleet/minimal", "-n", APP_NS, "--replicas=5"]);
    wait_for("minimal-gateway at 5 replicas", Duration::from_secs(30), || {
        plane.get(&["deployment", "minimal-gateway", "-n", APP_NS])["spec"]["replicas"] == 5
    });
    let out = plane.kubectl(&["scale", "sfleet/minimal", "-n", APP_NS, "--replicas=50"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("within replicas.min and replicas.max"));
    let out = plane.kubectl(&["scale", "sfleet/chat", "-n", APP_NS, "--replicas=5"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("autoscaling.mode: external"), "kubectl scale of an autoscaled fleet: {err}");
    // Its pods cannot be read (no node): unknown is not zero, so nothing is scaled down.
    let autoscaler = fleet("chat")["status"]["autoscaler"].clone();
    assert_eq!(autoscaler["replicas"], 3, "{autoscaler}");
    // Every pod is unknown (the drift steps' rollouts may have left an extra pending pod).
    let pods = autoscaler["pods"].as_array().map_or(0, |p| p.len()) as i64;
    assert!(pods >= 3 && autoscaler["unknownPods"].as_i64() == Some(pods), "{autoscaler}");
    assert_eq!(condition(&fleet("chat"), "Draining").0, "False");
    // The external drivers' examples: the API server takes the HPA (KEDA's ScaledObject needs
    // KEDA, so only that example's fleet is applied); kubectl scale, as they do, drives an
    // external fleet, and the operator keeps no autoscaler state of its own for it.
    plane.kubectl_ok(&["apply", "-n", APP_NS, "-f", &example("hpa.yaml")]);
    let hpa = plane.get(&["hpa", "pushes", "-n", APP_NS]);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "SocketFleet", "{hpa}");
    let keda = std::fs::read_to_string(example("keda.yaml")).expect("examples/keda.yaml");
    let keda_fleet = keda.split("\n---\n").next().expect("the fleet comes first");
    let out = plane.kubectl_stdin(&["apply", "-n", APP_NS, "-f", "-"], keda_fleet);
    assert!(out.status.success(), "keda.yaml's fleet: {}", String::from_utf8_lossy(&out.stderr));
    plane.kubectl_ok(&["scale", "sfleet/live-scores", "-n", APP_NS, "--replicas=4"]);
    wait_for("live-scores-gateway at 4 replicas", Duration::from_secs(30), || {
        plane.get(&["deployment", "live-scores-gateway", "-n", APP_NS])["spec"]["replicas"] == 4
    });
    assert!(fleet("live-scores")["status"]["autoscaler"].is_null(), "external mode: the operator does not scale");

    // 7. Two replicas: only the leader reconciles; killing it hands over within the lease.
    let mut follower = Operator::start(&plane, NS, SA, "op-b", LEASE);
    std::thread::sleep(Duration::from_secs(8));
    assert!(!follower.is_leader() && follower.running(), "op-b follows");
    assert_eq!(
        socketfleet_e2e::metric(follower.metrics_port, "socketfleet_operator_reconciles_total"),
        Some(0.0),
        "a follower does not reconcile"
    );
    let killed = Instant::now();
    leader.kill();
    // Within the lease (6 s) plus the follower's retry period (2 s), and a little slack.
    wait_for("op-b to take over", Duration::from_secs(11), || follower.is_leader());
    let handover = killed.elapsed();
    measure!("leader handover {:.1}s after SIGKILL (lease 6s)", handover.as_secs_f64());
    plane.kubectl_ok(&["scale", "sfleet/minimal", "-n", APP_NS, "--replicas=4"]);
    wait_for("the new leader reconciles", Duration::from_secs(30), || {
        plane.get(&["deployment", "minimal-gateway", "-n", APP_NS])["spec"]["replicas"] == 4
    });

    // 8. Deleting a fleet garbage-collects every child. Its claims stay by default (chat);
    // with retainOnDelete: false they go with it (scratch).
    let scratch = "apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: scratch}\nspec:\n  auth: {mode: none}\n  \
                   redis: {persistence: {enabled: true, size: 1Gi, retainOnDelete: false}}\n";
    let out = plane.kubectl_stdin(&["apply", "-n", APP_NS, "-f", "-"], scratch);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let claims = |fleet: &str| {
        let list = plane.get(&["pvc", "-n", APP_NS, "-l", &format!("app.kubernetes.io/instance={fleet}")]);
        list["items"].as_array().map_or(0, |i| i.len())
    };
    wait_for("the StatefulSet controller to claim volumes", Duration::from_secs(60), || claims("chat") == 6 && claims("scratch") == 6);
    plane.kubectl_ok(&["delete", "sfleet", "chat", "-n", APP_NS, "--wait=true"]);
    plane.kubectl_ok(&["delete", "sfleet", "scratch", "-n", APP_NS, "--wait=true"]);
    wait_for("chat's children to be collected", Duration::from_secs(60), || {
        ["statefulset/chat-redis", "deployment/chat-gateway", "secret/chat-redis", "service/chat", "configmap/chat-redis"]
            .iter()
            .all(|o| plane.get(&[o, "-n", APP_NS]).is_null())
    });
    wait_for("scratch's claims to be deleted with it", Duration::from_secs(60), || claims("scratch") == 0);
    assert_eq!(claims("chat"), 6, "chat's claims are retained");
    measure!("claims after deleting the fleets: chat (retainOnDelete: true) 6, scratch (retainOnDelete: false) 0");

    // 9. The plain-manifest path: uninstall the chart, apply deploy/ instead.
    drop(follower);
    plane.helm_ok(&["uninstall", "socketfleet", "--namespace", NS]);
    let manifests = repo_root().join("deploy/socketfleet.yaml").display().to_string();
    plane.kubectl_ok(&["apply", "-f", &manifests]);
    let plain = Operator::start(&plane, NS, SA, "op-plain", LEASE);
    wait_for("the operator from plain manifests to lead", Duration::from_secs(30), || plain.is_leader());
    plane.kubectl_ok(&["apply", "-n", APP_NS, "-f", &example("chat.yaml")]);
    wait_for("chat rebuilt by the plain-manifest install", Duration::from_secs(60), || {
        !plane.get(&["statefulset", "chat-redis", "-n", APP_NS]).is_null()
    });
    measure!("l2 scenario took {:.0}s", started.elapsed().as_secs_f64());
}
