//! `ward-demo-app`: the tiny HTTP apps behind the sidecars of `make demo` and of the demo pods
//! in deploy/kubernetes/demo. Standard library only, so its image is a few hundred kilobytes.
//!
//! - `serve ADDR NAME` answers every request with `hello from NAME`, followed by the caller's
//!   SPIFFE ID when its sidecar vouched for one (the `URI=` of the `x-forwarded-client-cert`
//!   header an HTTP listener writes), and logs one line per request saying who called.
//! - `call URL INTERVAL` sends `GET URL` (plain `http://host:port/path`, as to a sidecar's
//!   outbound listener) every INTERVAL (`5s`, `500ms`) forever and logs each answer's status
//!   and body, or the error.
//! - `free-port` prints an unused 127.0.0.1 port (for the demo script).

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// The largest request head or response the apps read.
const MAX_MESSAGE: usize = 64 * 1024;
const USAGE: &str =
    "usage: ward-demo-app serve ADDR NAME | call URL INTERVAL | free-port | --version";
/// How long a call may take, connect to last byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A log line on stdout (the container's log); a closed stdout is not worth dying for.
fn log(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Reads until the end of the request head (or the cap) and returns it.
fn read_head(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_MESSAGE {
            return None;
        }
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

/// The caller's SPIFFE ID from the `x-forwarded-client-cert` header, if there is one.
fn caller(head: &str) -> Option<&str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("x-forwarded-client-cert"))
        .and_then(|(_, value)| {
            value
                .split(';')
                .find_map(|part| part.trim().strip_prefix("URI="))
        })
}

fn serve(mut sock: TcpStream, name: &str) {
    let _ = sock.set_read_timeout(Some(CALL_TIMEOUT));
    let Some(head) = read_head(&mut sock) else {
        return;
    };
    let head = String::from_utf8_lossy(&head);
    let request_line = head.lines().next().unwrap_or_default();
    let body = match caller(&head) {
        Some(id) => {
            log(&format!("{name}: {request_line} from {id}"));
            format!("hello from {name} to {id}\n")
        }
        None => {
            log(&format!("{name}: {request_line} from an unnamed caller"));
            format!("hello from {name}\n")
        }
    };
    let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    let _ = sock.write_all(resp.as_bytes());
}

/// `5s`, `250ms`: the interval of `call`.
fn parse_interval(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    text.strip_suffix('s')?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// One `GET url`: the status line's code and the body, as text.
fn get(url: &str) -> std::io::Result<String> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported".into()))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| bad(format!("{authority}: no address")))?;
    let mut sock = TcpStream::connect_timeout(&addr, CALL_TIMEOUT)?;
    sock.set_read_timeout(Some(CALL_TIMEOUT))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: ward-demo-app\r\nconnection: close\r\n\r\n"
    );
    sock.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    sock.take(MAX_MESSAGE as u64).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("the answer has no complete head".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| bad("the answer has no status".into()))?;
    Ok(format!("{status} {}", body.trim_end()))
}

fn fail(message: &str, code: u8) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "ward-demo-app: {message}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--help"] | [_, "--help"] => {
            log(USAGE);
            ExitCode::SUCCESS
        }
        ["--version"] => {
            log(&format!("ward-demo-app {}", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        ["free-port"] => match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(addr) => {
                log(&addr.port().to_string());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string(), 1),
        },
        ["serve", addr, name] => {
            let listener = match TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => return fail(&format!("cannot listen on {addr}: {e}"), 1),
            };
            log(&format!("{name}: listening on {addr}"));
            let name = (*name).to_owned();
            for sock in listener.incoming().flatten() {
                let name = name.clone();
                std::thread::spawn(move || serve(sock, &name));
            }
            ExitCode::SUCCESS
        }
        ["call", url, interval] => {
            let Some(every) = parse_interval(interval) else {
                return fail(&format!("{interval}: not an interval (5s, 500ms)"), 2);
            };
            loop {
                match get(url) {
                    Ok(answer) => log(&format!("GET {url}: {answer}")),
                    Err(e) => log(&format!("GET {url}: failed: {e}")),
                }
                std::thread::sleep(every);
            }
        }
        _ => fail(USAGE, 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_the_uri_of_the_forwarded_client_cert() {
        let head = "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Client-Cert: By=spiffe://td/b;Hash=ab;URI=spiffe://td/ns/a/sa/f\r\n\r\n";
        assert_eq!(caller(head), Some("spiffe://td/ns/a/sa/f"));
        assert_eq!(caller("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("5"), None);
    }
}
