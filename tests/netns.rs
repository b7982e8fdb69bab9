//! Network namespaces for tests that need several hosts: a switch namespace with a bridge,
//! and one namespace per host joined to it by a veth pair, addressed in a /24 of the test's
//! own. Commands run inside a host with `ip netns exec` (and as another uid with `setpriv`).
//! Everything is deleted when the [`Lan`] is dropped, also when the test failed, processes
//! inside first. Needs root (CI runs as root).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The test's network: a bridge and hosts on `PREFIX.0/24` and `fd77::/64` (host N is
/// `PREFIX.N` and `fd77::N`).
#[derive(Debug)]
pub struct Lan {
    name: String,
    /// `10.77.0`: hosts are `PREFIX.N`.
    pub prefix: String,
    hosts: Vec<String>,
    children: Vec<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    /// A switch namespace `NAME-sw` with bridge `br0`.
    pub fn new(name: &str, prefix: &str) -> Self {
        let lan = Self {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            hosts: Vec::new(),
            children: Vec::new(),
        };
        let sw = format!("{name}-sw");
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        lan
    }

    /// Adds host `NAME-<host>` at `PREFIX.<n>`; returns the namespace's name.
    pub fn host(&mut self, host: &str, n: u8) -> String {
        let ns = format!("{}-{host}", self.name);
        let sw = format!("{}-sw", self.name);
        ip(&["netns", "add", &ns]);
        self.hosts.push(ns.clone());
        let (inside, outside) = (format!("v{n}"), format!("e{n}"));
        ip(&[
            "link", "add", &inside, "type", "veth", "peer", "name", &outside,
        ]);
        ip(&["link", "set", &inside, "netns", &ns]);
        ip(&["link", "set", &outside, "netns", &sw]);
        ip(&["-n", &sw, "link", "set", &outside, "master", "br0", "up"]);
        let addr = format!("{}.{n}/24", self.prefix);
        ip(&["-n", &ns, "addr", "add", &addr, "dev", &inside]);
        // No duplicate address detection: the address is usable at once.
        let addr6 = format!("fd77::{n}/64");
        ip(&["-n", &ns, "addr", "add", &addr6, "dev", &inside, "nodad"]);
        ip(&["-n", &ns, "link", "set", &inside, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `cmd` in `ns` (as `uid` when given) and waits for it.
    pub fn run(&self, ns: &str, uid: Option<u32>, cmd: &[&str]) -> Output {
        command(ns, uid, cmd).output().unwrap()
    }

    /// Starts `cmd` in `ns` (as `uid` when given), its stderr to `log`; killed on drop.
    pub fn spawn(&mut self, ns: &str, uid: Option<u32>, cmd: &[&str], log: &Path) {
        let child = command(ns, uid, cmd)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

fn command(ns: &str, uid: Option<u32>, cmd: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]);
    if let Some(uid) = uid {
        let id = uid.to_string();
        c.args([
            "setpriv",
            "--reuid",
            &id,
            "--regid",
            &id,
            "--clear-groups",
            "--",
        ]);
    }
    c.args(cmd);
    c
}

impl Drop for Lan {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self
            .hosts
            .iter()
            .chain(std::iter::once(&format!("{}-sw", self.name)))
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
