//! The deployment files agree with each other and with the host: the
//! Kubernetes config map carries `deploy/plugins.toml` as it is, the pods get
//! longer to stop than the host's drain takes, the probes and the ingress's
//! routing key are the host's, and the host accepts that config.

use std::path::Path;

use agentflow_e2e::Server;

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value after `key` on the first line that has it (`key = v`, `key: v`).
fn value_after(text: &str, key: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key))
        .map(|rest| rest.trim_start_matches([' ', '=', ':']).trim().to_string())
        .unwrap_or_else(|| panic!("no '{key}' in\n{text}"))
}

#[test]
fn the_config_map_carries_the_hosts_config_unchanged() {
    let map = deploy("k8s/configmap.yaml");
    let start = map
        .lines()
        .position(|l| l.trim() == "plugins.toml: |")
        .expect("a 'plugins.toml: |' block");
    let block: Vec<&str> = map.lines().skip(start + 1).collect();
    let indent = block
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .unwrap_or(0);
    let embedded: Vec<&str> = block
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect();
    let embedded = embedded.join("\n");
    assert_eq!(
        embedded.trim_end(),
        deploy("plugins.toml").trim_end(),
        "deploy/k8s/configmap.yaml and deploy/plugins.toml differ"
    );
}

#[test]
fn pods_wait_longer_than_the_drain_and_probe_the_hosts_endpoints() {
    let grace: f64 = value_after(&deploy("plugins.toml"), "shutdown_grace")
        .parse()
        .unwrap();
    let set = deploy("k8s/statefulset.yaml");
    let termination: f64 = value_after(&set, "terminationGracePeriodSeconds")
        .parse()
        .unwrap();
    // The drain, then destroying sessions and shutting plugins down.
    assert!(
        termination >= grace + 10.0,
        "terminationGracePeriodSeconds {termination} leaves too little after shutdown_grace {grace}"
    );
    let ready = set.find("readinessProbe").expect("a readiness probe");
    let live = set.find("livenessProbe").expect("a liveness probe");
    let path_after = |at: usize| value_after(&set[at..], "path");
    assert_eq!(path_after(ready), "/ready");
    assert_eq!(path_after(live), "/health");
    assert_eq!(value_after(&set, "containerPort"), "18890");
    let ingress = deploy("k8s/ingress.yaml");
    assert_eq!(
        value_after(&ingress, "nginx.ingress.kubernetes.io/upstream-hash-by"),
        "\"$http_x_worker_id\""
    );
    let template = deploy("nginx/agentflow.conf.template");
    assert!(template.contains("hash $http_x_worker_id consistent;"));
}

#[test]
fn the_host_accepts_the_deployment_config() {
    // A host starts with it (the environment filling in its paths and
    // name) and names itself as configured.
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("plugins")).unwrap();
    let config = state.path().join("plugins.toml");
    // No warmup at start and loopback only: this checks the file, not the plugins.
    let text = deploy("plugins.toml")
        .replace("host = \"0.0.0.0\"", "host = \"127.0.0.1\"")
        .replace("port = 18890", "port = 0")
        .replace("warmup = [\"bash\", \"vm\", \"rag\"]", "warmup = []");
    std::fs::write(&config, text).unwrap();
    let mut child = std::process::Command::new(Server::binary())
        .args(["serve", "--config"])
        .arg(&config)
        .env("HOSTNAME", "pod-7")
        .env("AGENTFLOW_HOME", home.path())
        .env("AGENTFLOW_STATE", state.path())
        .env("AGENTFLOW_TOKEN", "t0ken")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("agentflow listening on ")
        .map(String::from);
    let answer = base.as_ref().map(|b| {
        ureq::get(&format!("{b}/health"))
            .call()
            .map_err(|e| e.to_string())
            .map(|r| r.header("x-agentflow-node").map(String::from))
    });
    let _ = child.kill();
    let _ = child.wait();
    let base = base.unwrap_or_else(|| panic!("did not start: {line}"));
    assert!(base.starts_with("http://127.0.0.1:"));
    assert_eq!(answer.unwrap().unwrap().as_deref(), Some("pod-7"));
}
