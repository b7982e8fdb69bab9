//! Helpers for system tests that run ward as operators do: the real `ward-ca` and
//! `ward-proxy` binaries as child processes in a temporary directory, configured by YAML
//! files, driven by the operator commands, observed through the admin endpoints, with a
//! real TCP echo app behind the sidecars and a client that counts every failed exchange.
//!
//! The binaries are the workspace's own `target/<profile>/ward-ca` and `ward-proxy`, which
//! `cargo test --workspace` (and so `make test`) builds before any test runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Path of a workspace binary next to the running test's own directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

pub use crate::kit::{free_port, wait_until};

/// A child process whose stderr goes to `<dir>/<name>.log`; killed when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `bin args...` in `dir`.
    pub fn spawn(dir: &Path, name: &str, bin: &Path, args: &[&str]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(bin)
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// Sends `signal` (e.g. "KILL", "HUP").
    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ward-ca args...` in `dir`: exit code, stdout, stderr.
pub fn ward_ca(dir: &Path, args: &[&str]) -> (i32, String, String) {
    crate::kit::run_in(&bin("ward-ca"), dir, args)
}

/// A plain HTTP/1.1 GET (admin endpoints): status and body, or `None` if nothing answered.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_at(SocketAddr::from(([127, 0, 0, 1], port)), path)
}

/// The same at any address (a pod's, on a test's own network).
pub fn http_get_at(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    sock.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// A sidecar's `/identity` document, if it has one.
pub fn identity(admin_port: u16) -> Option<serde_json::Value> {
    match http_get(admin_port, "/identity")? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// The app behind the sidecars: echoes every line back, on any number of connections.
pub fn echo_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut writer = sock.try_clone().unwrap();
                for line in BufReader::new(sock).lines() {
                    let Ok(line) = line else { return };
                    if writeln!(writer, "{line}").is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One line out and back through `port` on an open connection.
pub fn echo_on(conn: &mut BufReader<TcpStream>, msg: &str) -> Result<(), String> {
    writeln!(conn.get_mut(), "{msg}").map_err(|e| format!("write: {e}"))?;
    let mut reply = String::new();
    match conn.read_line(&mut reply) {
        Ok(0) => Err("closed by the proxy".into()),
        Ok(_) if reply.trim_end() == msg => Ok(()),
        Ok(_) => Err(format!("wrong reply {reply:?}")),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Opens a connection to a local sidecar listener.
pub fn connect(port: u16) -> Result<BufReader<TcpStream>, String> {
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    Ok(BufReader::new(sock))
}

/// A client that sends an exchange on a new connection (a new mTLS handshake between the
/// sidecars) every few milliseconds and records every failure.
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Traffic {
    /// Starts sending through `port` (an outbound listener of a sidecar).
    pub fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failures.clone());
        let started = Instant::now();
        let thread = thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let msg = format!("request {n}");
                match connect(port).and_then(|mut c| echo_on(&mut c, &msg)) {
                    Ok(()) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => f.lock().unwrap().push(format!(
                        "{msg} at {:.1}s: {e}",
                        started.elapsed().as_secs_f64()
                    )),
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        Self {
            stop,
            ok,
            failures,
            thread: Some(thread),
        }
    }

    /// Successful exchanges so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops; panics unless every exchange succeeded and at least `min_ok` did.
    pub fn finish_without_failures(mut self, min_ok: u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let (ok, failures) = (self.ok(), self.failures.lock().unwrap().clone());
        assert!(
            failures.is_empty(),
            "{} of {} requests failed: {failures:#?}",
            failures.len(),
            ok + failures.len() as u64
        );
        assert!(ok >= min_ok, "only {ok} requests went through");
    }
}
