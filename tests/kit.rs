//! The small waiting and port helpers every test package uses, written once: a free loopback
//! port, and polling with a deadline (blocking for tests that drive child processes, async
//! for tests on a tokio runtime). No sleeps for synchronisation anywhere else.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the binary `bin` with `args` in `dir`: exit code, stdout, stderr.
pub fn run_in(bin: &Path, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An unused 127.0.0.1 port (bound once and released; for configs that need a number).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A 127.0.0.1 port that refuses connections for as long as the returned socket is held: bound,
/// never listening. (A port bound and closed again, like [`free_port`]'s, could be taken by a
/// concurrent test, which would then answer.)
pub fn refused_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Polls `f` every 100 ms until it is true; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (polling every 20 ms, up to 10 s) for `cond`; panics with `what` if it never holds.
/// A condition that panics (a metric sample that does not exist yet) counts as not yet; at
/// the deadline its last message is part of the failure.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut cond));
        let why = match outcome {
            Ok(true) => return,
            Ok(false) => String::new(),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default(),
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what} {why}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What bash's programmable completion offers for the words `line` (the last one being
/// completed, possibly empty) of the binary `bin`, using the script `bin completions bash`
/// prints: the completion function it registers is called as bash would on TAB.
pub fn bash_completions(bin: &Path, line: &[&str]) -> Vec<String> {
    let script = Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .expect("the binary prints its completion script");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let name = line[0];
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let cword = line.len() - 1;
    let prev = if cword > 0 { line[cword - 1] } else { "" };
    let cur = line[cword];
    let program = format!(
        "source '{}'\nfn=$(complete -p {name} | sed -E 's/.* -F ([^ ]+) .*/\\1/')\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}\n\
         \"$fn\" '{name}' '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        file.display(),
        line.join(" ")
    );
    let out = Command::new("bash")
        .args(["-c", &program])
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Log lines, in every `*.log` file of `dir`, that print a Rust `Option` as `Some(...)` or
/// `None` (a field logged with `?` where the value was meant): what an operator should never
/// have to read or grep around.
pub fn debug_options_in_logs(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        found.extend(
            text.lines()
                .filter(|l| l.contains("Some(") || l.contains("=None") || l.contains(": None"))
                .map(|l| format!("{}: {l}", path.display())),
        );
    }
    found
}
