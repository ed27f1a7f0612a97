//! The shipped deployments give the worker at least the memory `check-config` says the shipped
//! config (`config/aws.toml`, what the image runs) may need in the worst case: the Kubernetes
//! limit, the ECS container's hard limit and the Terraform module's figure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The total `trailhose check-config` prints for `config`, in bytes.
fn printed_bound(config: &Path) -> u64 {
    printed_bound_with(config, &[]).0
}

/// The same with `env` set (and no other `TRAILHOSE_` variable); also the output.
fn printed_bound_with(config: &Path, env: &[(&str, &str)]) -> (u64, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailhose"));
    cmd.arg("check-config").arg(config);
    // The bound of the file itself, not of this machine's overrides.
    for (k, _) in std::env::vars() {
        if k.starts_with("TRAILHOSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("trailhose runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("worst-case memory: "))
        .unwrap_or_else(|| panic!("no bound in {stdout}"));
    let bytes = line
        .rsplit_once('(')
        .and_then(|(_, b)| b.strip_suffix(" bytes)"))
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line}"));
    (bytes, stdout)
}

/// A Kubernetes memory quantity in bytes (`1Gi`, `896Mi`, `1000000k`, plain bytes).
fn quantity(q: &str) -> u64 {
    let q = q.trim().trim_matches('"');
    for (suffix, factor) in [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ] {
        if let Some(n) = q.strip_suffix(suffix).and_then(|n| n.parse::<u64>().ok()) {
            return n * factor;
        }
    }
    q.parse()
        .unwrap_or_else(|_| panic!("not a memory quantity: {q}"))
}

/// `resources.limits.memory` of the (only) container in the Deployment.
fn k8s_limit(yaml: &str) -> u64 {
    let mut in_limits = false;
    for line in yaml.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        if t == "limits:" {
            in_limits = true;
        } else if in_limits {
            if let Some(v) = t.strip_prefix("memory:") {
                return quantity(v);
            }
            if t.ends_with(':') {
                in_limits = false;
            }
        }
    }
    panic!("no resources.limits.memory in the Deployment")
}

/// The `default` of a Terraform variable (a number).
fn tf_default(hcl: &str, variable: &str) -> u64 {
    let start = hcl
        .find(&format!("variable \"{variable}\""))
        .unwrap_or_else(|| panic!("no variable {variable}"));
    hcl[start..]
        .lines()
        .find_map(|l| l.trim().strip_prefix("default"))
        .and_then(|v| v.trim().strip_prefix('='))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no numeric default for {variable}"))
}

#[test]
fn deployment_memory_limits_cover_the_printed_bound_of_the_shipped_config() {
    let root = root();
    let bound = printed_bound(&root.join("config/aws.toml"));
    // The bound counts the worker's object slots, its reader budget, channels with a
    // max_record_bytes record per chunk: far above the ~200 MiB the old comment claimed.
    assert!(bound > 512 << 20, "bound {bound}");

    let yaml = std::fs::read_to_string(root.join("deploy/k8s/deployment.yaml")).expect("yaml");
    let k8s = k8s_limit(&yaml);
    assert!(
        k8s >= bound,
        "deploy/k8s/deployment.yaml: limit {k8s} bytes below the bound {bound}"
    );

    let td: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/ecs/task-definition.json")).expect("json"),
    )
    .expect("task definition JSON");
    let container = td["containerDefinitions"][0]["memory"]
        .as_u64()
        .expect("the container's hard memory limit (MiB)");
    assert!(
        container << 20 >= bound,
        "deploy/ecs/task-definition.json: container memory {container} MiB below the bound {bound}"
    );
    let task: u64 = td["memory"]
        .as_str()
        .and_then(|m| m.parse().ok())
        .expect("task memory (MiB)");
    assert!(task >= container, "the task holds its container");

    let hcl = std::fs::read_to_string(root.join("deploy/terraform/trailhose/variables.tf"))
        .expect("variables.tf");
    let tf = tf_default(&hcl, "worker_memory_limit_mib");
    assert!(
        tf << 20 >= bound,
        "terraform: worker_memory_limit_mib {tf} MiB below the bound {bound}"
    );
}

/// The worker applies `TRAILHOSE_…` overrides at start; `check-config` prints the bound the
/// worker would have with them.
#[test]
fn the_printed_bound_follows_environment_overrides() {
    let config = root().join("config/aws.toml");
    let (file, plain) = printed_bound_with(&config, &[]);
    let (more, out) = printed_bound_with(&config, &[("TRAILHOSE_SQS_MAX_OBJECTS_IN_FLIGHT", "32")]);
    assert!(!plain.contains("environment overrides"), "{plain}");
    assert!(
        out.contains("with environment overrides: TRAILHOSE_SQS_MAX_OBJECTS_IN_FLIGHT"),
        "{out}"
    );
    assert!(out.contains("max_objects_in_flight 32"), "{out}");
    assert!(more > file, "{more} <= {file}");
}

#[test]
fn memory_quantities_parse() {
    assert_eq!(quantity("1Gi"), 1 << 30);
    assert_eq!(quantity("\"896Mi\""), 896 << 20);
    assert_eq!(quantity("2G"), 2_000_000_000);
    assert_eq!(quantity("12345"), 12345);
    let yaml = "resources:\n  # limits: memory: 1Ki\n  requests:\n    memory: 1Mi\n  limits:\n    memory: 2Gi\n";
    assert_eq!(k8s_limit(yaml), 2 << 30);
    let hcl = "variable \"a\" {\n  default = 1\n}\nvariable \"b\" {\n  type = number\n  default     = 42\n}\n";
    assert_eq!(tf_default(hcl, "b"), 42);
}
