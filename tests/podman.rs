//! podman for tests that run containers and pods: every command through scripts/podman.sh
//! (ward's private containers.conf), a network of the test's own (`--internal`: no route out,
//! no DNS server), and a guard that removes the pods, volumes and network it was given when
//! dropped, also when the test failed ([`remove_stale`] for a run that was killed).

use std::path::PathBuf;
use std::process::{Command, Output};

/// scripts/podman.sh in this repository.
pub fn wrapper() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/podman.sh")
}

/// Runs `podman args...`.
pub fn run(args: &[&str]) -> Output {
    Command::new(wrapper())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run podman: {e} (make kube-test installs it)"))
}

/// Runs `podman args...`, panics unless it succeeds, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "podman {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `podman inspect --format FORMAT NAME`, trimmed.
pub fn inspect(name: &str, format: &str) -> String {
    ok(&["inspect", "--format", format, name]).trim().to_owned()
}

/// stdout and stderr of a container so far.
pub fn logs(container: &str) -> String {
    let out = run(&["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What a test created; removed when dropped.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Pods (removed with their containers, without waiting).
    pub pods: Vec<String>,
    /// Named volumes.
    pub volumes: Vec<String>,
    /// The network, last.
    pub network: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pod in &self.pods {
            let _ = run(&["pod", "rm", "--force", "--time", "0", pod]);
        }
        for volume in &self.volumes {
            let _ = run(&["volume", "rm", "--force", volume]);
        }
        if let Some(net) = &self.network {
            let _ = run(&["network", "rm", "--force", net]);
        }
    }
}

/// A new `--internal` network without DNS, on a free `10.89.N.0/24` (the gateway, `.1`, is
/// the host's address on it); returns the gateway.
pub fn network(name: &str, cleanup: &mut Cleanup) -> std::net::Ipv4Addr {
    let start = std::process::id() as usize;
    for n in (0..40).map(|i| 100 + (start + i) % 150) {
        let (subnet, gateway) = (format!("10.89.{n}.0/24"), format!("10.89.{n}.1"));
        let out = run(&[
            "network",
            "create",
            "--internal",
            "--disable-dns",
            "--subnet",
            &subnet,
            "--gateway",
            &gateway,
            name,
        ]);
        if out.status.success() {
            cleanup.network = Some(name.to_owned());
            return gateway.parse().unwrap();
        }
    }
    panic!("no free 10.89.N.0/24 subnet for network {name}");
}

/// Removes what an earlier run of a test killed before its [`Cleanup`] ran left behind: pods,
/// volumes and networks named `PREFIX<pid>...` whose process is gone.
pub fn remove_stale(prefix: &str) {
    let stale = |name: &str| {
        let Some(rest) = name.strip_prefix(prefix) else {
            return false;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        !pid.is_empty() && !std::path::Path::new("/proc").join(&pid).exists()
    };
    let names = |args: &[&str]| -> Vec<String> {
        String::from_utf8_lossy(&run(args).stdout)
            .lines()
            .map(str::trim)
            .filter(|n| stale(n))
            .map(String::from)
            .collect()
    };
    for pod in names(&["pod", "ls", "--format", "{{.Name}}"]) {
        let _ = run(&["pod", "rm", "--force", "--time", "0", &pod]);
    }
    for volume in names(&["volume", "ls", "--format", "{{.Name}}"]) {
        let _ = run(&["volume", "rm", "--force", &volume]);
    }
    for net in names(&["network", "ls", "--format", "{{.Name}}"]) {
        let _ = run(&["network", "rm", "--force", &net]);
    }
}
