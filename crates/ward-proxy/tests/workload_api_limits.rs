//! What a local caller can cost the sidecar through the Workload API socket: a caller the
//! kernel says is not allowed holds no slot and makes the sidecar buffer nothing, an allowed
//! uid is capped and timed out, and nothing a caller sends reaches `/metrics` unescaped
//! (checked by promtool, a Prometheus text parser nobody here wrote).
//!
//! In the first two the not-allowed caller is this test process (root) and the allowed app
//! curl run as `nobody`, so they need root, as `make test` runs in CI (as another user they
//! print "skipped: needs root").

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use support::ca::*;
use support::workload::*;
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::time::{timeout, Instant};
use ward_e2e::TestCa;

const NOBODY: u32 = 65534;

/// A gRPC call by curl as `uid`, with the security header and an empty request message.
fn grpc_as(uid: u32, socket: &Path, method: &str) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--http2-prior-knowledge", "--max-time", "3"])
        .arg("--unix-socket")
        .arg(socket)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(["-H", "workload.spiffe.io: true", "--data-binary", "@-"])
        .arg(format!("http://localhost/SpiffeWorkloadAPI/{method}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::uid(&mut cmd, uid);
    std::os::unix::process::CommandExt::gid(&mut cmd, uid);
    let mut child = cmd.spawn().expect("curl (make test installs it)");
    child.stdin.take().unwrap().write_all(&[0; 5]).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).to_lowercase(),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether the server closes `conn` within `within` (EOF or reset), sending nothing first.
async fn closed_within(conn: &mut UnixStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let end = Instant::now() + within;
    loop {
        match timeout(
            end.saturating_duration_since(Instant::now()),
            conn.read(&mut buf),
        )
        .await
        {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue, // the server's SETTINGS or GOAWAY
        }
    }
}

/// This process's uid.
fn me() -> u32 {
    own_uid(Path::new("/proc/self"))
}

/// Root's uid when this runs as root (the tests that run curl as `nobody` need it); as any
/// other user they print "skipped: needs root" and check nothing, like the other tests that
/// need root (CI runs as root).
#[allow(clippy::print_stdout)] // said on the test's output: a run as a user shows what it skipped
fn root() -> Option<u32> {
    let me = me();
    if me != 0 {
        println!("skipped: needs root (runs curl as nobody; CI runs as root)");
        return None;
    }
    Some(me)
}

struct Sidecar {
    _test_ca: TestCa,
    _pki: Pki,
}

async fn sidecar_for(uids: &[u32]) -> (Ca, Sidecar, ward_proxy::RunningProxy, std::path::PathBuf) {
    let test_ca = TestCa::new("example.org");
    let ca = start_ca(&test_ca, CA_EXTRA).await;
    let pki = Pki::new();
    // nobody must reach the socket inside the test's directory.
    std::fs::set_permissions(
        pki.path(""),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let socket = pki.path("workload.sock");
    let proxy = ward_proxy::start(config(&pki, &ca, &socket, uids))
        .await
        .unwrap();
    let kept = Sidecar {
        _test_ca: test_ca,
        _pki: pki,
    };
    (ca, kept, proxy, socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_is_not_allowed_holds_no_slot_of_the_app() {
    let Some(_) = root() else { return };
    let (ca, _pki, proxy, socket) = sidecar_for(&[NOBODY]).await;

    // The not-allowed caller opens more connections than the server would ever hold.
    let mut held = Vec::new();
    for _ in 0..1100 {
        held.push(UnixStream::connect(&socket).await.unwrap());
    }
    // The app (nobody) is still served.
    let s = socket.clone();
    let answer = tokio::task::spawn_blocking(move || grpc_as(NOBODY, &s, "FetchJWTBundles"))
        .await
        .unwrap();
    assert!(answer.contains("http/2 200"), "{answer}");
    assert!(!answer.contains("grpc-status: 7"), "{answer}");
    // And every one of the caller's connections is closed without waiting for it.
    for conn in held.iter_mut().step_by(50) {
        assert!(closed_within(conn, Duration::from_secs(5)).await);
    }
    assert!(
        metric_or_zero(
            &proxy,
            "ward_workload_api_connections_closed_total{reason=\"not_allowed_closed\"}"
        ) > 0.0
    );
    proxy.shutdown().await;
    ca.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_uid_is_capped_and_a_connection_that_never_calls_is_closed() {
    let Some(me) = root() else { return };
    let (ca, _pki, proxy, socket) = sidecar_for(&[me, NOBODY]).await;
    let mut held = Vec::new();
    for _ in 0..ward_workload::limits::MAX_PER_UID {
        held.push(UnixStream::connect(&socket).await.unwrap());
    }
    // One more from the same uid is closed at once; another allowed uid is still served.
    let mut extra = UnixStream::connect(&socket).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(2)).await);
    let s = socket.clone();
    let answer = tokio::task::spawn_blocking(move || grpc_as(NOBODY, &s, "FetchJWTBundles"))
        .await
        .unwrap();
    assert!(answer.contains("http/2 200"), "{answer}");
    assert_eq!(
        metric(
            &proxy,
            "ward_workload_api_connections_closed_total{reason=\"per_uid_limit\"}"
        ),
        1.0
    );
    // The held connections never call: each is closed after the first-call deadline.
    let deadline = ward_workload::limits::FIRST_CALL + Duration::from_secs(5);
    assert!(closed_within(&mut held[0], deadline).await);
    assert!(
        metric(
            &proxy,
            "ward_workload_api_connections_closed_total{reason=\"first_call_timeout\"}"
        ) >= 1.0
    );
    proxy.shutdown().await;
    ca.running.shutdown().await;
}

/// Opens calls on one connection as a caller that is not allowed, each sending up to 64 KiB of
/// request body, and counts the bytes the server's flow control let through in `within`.
async fn bytes_a_refused_caller_can_send(socket: &Path, within: Duration) -> (usize, bool) {
    let io = UnixStream::connect(socket).await.unwrap();
    let (mut send, conn) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let end = Instant::now() + within;
    let mut granted = 0;
    let mut streams = Vec::new();
    let mut first = None;
    while Instant::now() < end {
        let Ok(Ok(ready)) = timeout(Duration::from_millis(500), send.clone().ready()).await else {
            break;
        };
        send = ready;
        let req = hyper::Request::post("http://localhost/SpiffeWorkloadAPI/FetchJWTSVID")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("workload.spiffe.io", "true")
            .body(())
            .unwrap();
        let Ok((response, mut stream)) = send.send_request(req, false) else {
            break;
        };
        first.get_or_insert(response);
        let mut sent = 0;
        while sent < 64 * 1024 {
            stream.reserve_capacity(64 * 1024 - sent);
            let wait = std::future::poll_fn(|cx| stream.poll_capacity(cx));
            match timeout(Duration::from_millis(200), wait).await {
                Ok(Some(Ok(n))) if n > 0 => {
                    granted += n;
                    sent += n;
                    if stream.send_data(Bytes::from(vec![0; n]), false).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        streams.push(stream);
    }
    // The refusal came while the request was still open.
    let refused = match timeout(Duration::from_secs(1), first.unwrap()).await {
        Ok(Ok(resp)) => resp.headers().get("grpc-status").is_some_and(|v| v == "7"),
        _ => false,
    };
    (granted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_answered_at_once_and_its_body_never_buffered() {
    let me = me();
    let (ca, _pki, proxy, socket) = sidecar_for(&[me + 4242]).await;
    let (granted, refused) = bytes_a_refused_caller_can_send(&socket, Duration::from_secs(3)).await;
    assert!(refused, "PermissionDenied before the request ended");
    // The server keeps nothing of a refused call: what a caller can push in before the
    // connection is closed is one HTTP/2 window per call it managed to open (discarded when
    // the call is answered), a few at most, never the megabytes a server reading bodies lets in.
    let most = 4 * 65_535;
    assert!(
        granted <= most,
        "the server let {granted} bytes in (at most {most})"
    );
    proxy.shutdown().await;
    ca.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_method_name_never_reaches_metrics() {
    let me = me();
    let (ca, _pki, proxy, socket) = sidecar_for(&[me]).await;
    for path in [
        "/SpiffeWorkloadAPI/Fetch\"X509SVID",
        "/a\\\"b/\"{x}",
        "/SpiffeWorkloadAPI/FetchX509SVID/x",
    ] {
        let io = UnixStream::connect(&socket).await.unwrap();
        let (send, conn) = h2::client::handshake(io).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut send = send.ready().await.unwrap();
        let req = hyper::Request::post(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("workload.spiffe.io", "true")
            .body(())
            .unwrap();
        let (response, _stream) = send.send_request(req, true).unwrap();
        let _ = timeout(Duration::from_secs(2), response).await;
    }
    let text = proxy.metrics.encode();
    ward_e2e::metrics::promtool_parses(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        metric(
            &proxy,
            "ward_workload_api_calls_total{method=\"unknown\",result=\"admitted\"}"
        ) >= 3.0,
        "{text}"
    );
    proxy.shutdown().await;
    ca.running.shutdown().await;
}
