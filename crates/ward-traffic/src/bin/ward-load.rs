//! `ward-load`: an open-loop HTTP/1.1 load generator for `make bench`.
//!
//! wrk measures how fast a server answers when the client waits for it (closed loop), which
//! hides queueing: a stalled server also stalls the load. This tool sends at a fixed rate
//! whatever happens. Request `k` is due at `start + k / rate`; `connections` keep-alive
//! connections take the due requests in turn (connection `i` serves requests `i`, `i + n`,
//! ...). A request whose connection is still waiting for an earlier answer when it falls
//! due is timed from its *due* time, so a server that falls behind is charged for the whole
//! wait (no coordinated omission); one whose connection was idle is timed from when it was
//! sent, since the timer's own lateness (up to a millisecond) is the generator's, not the
//! server's. Latencies go into an HDR histogram (1 µs to 60 s, 3 significant digits).
//!
//! Output, one line: `requests=N errors=E rate=R p50_us=.. p99_us=.. p999_us=.. max_us=..`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Fixed-rate HTTP/1.1 GETs over keep-alive connections.
#[derive(Debug, Parser)]
#[command(name = "ward-load", version)]
struct Args {
    /// `host:port` to connect to (plain HTTP).
    #[arg(long)]
    addr: String,
    /// Path to GET.
    #[arg(long, default_value = "/")]
    path: String,
    /// Requests per second.
    #[arg(long)]
    rate: u32,
    /// How long to send, e.g. 10s.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
}

/// One connection's share of the schedule; returns its latencies in µs and its error count.
async fn worker(
    args: &Args,
    index: u32,
    start: Instant,
    total: u64,
) -> Result<(Histogram<u64>, u64), String> {
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut errors = 0u64;
    let request = format!("GET {} HTTP/1.1\r\nhost: bench\r\n\r\n", args.path);
    let mut conn: Option<BufReader<TcpStream>> = None;
    let step = Duration::from_secs(1) / args.rate;
    let mut k = u64::from(index);
    while k < total {
        let due = start + step * u32::try_from(k).map_err(|e| e.to_string())?;
        // A connection that is free before its request is due waits on Tokio's timer, which
        // wakes up to a millisecond late: that lateness is the generator's, so such a request
        // is timed from when it was sent. One still busy with an earlier answer at the due
        // time is timed from the due time, charging the server for the queueing it caused.
        let idle = Instant::now() < due;
        tokio::time::sleep_until(due).await;
        let origin = if idle { Instant::now() } else { due };
        let c = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect(&args.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    BufReader::new(s)
                }
                Err(_) => {
                    errors += 1;
                    k += u64::from(args.connections);
                    continue;
                }
            },
        };
        match exchange(c, request.as_bytes()).await {
            Ok(c) => {
                let us = origin.elapsed().as_micros();
                let _ = hist.record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                conn = Some(c);
            }
            Err(_) => errors += 1,
        }
        k += u64::from(args.connections);
    }
    Ok((hist, errors))
}

/// Sends one request and reads one response (status 200, `content-length` body).
async fn exchange(
    mut c: BufReader<TcpStream>,
    request: &[u8],
) -> std::io::Result<BufReader<TcpStream>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    c.get_mut().write_all(request).await?;
    let mut line = String::new();
    c.read_line(&mut line).await?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(bad(&format!("status line {line:?}")));
    }
    let mut length = 0usize;
    loop {
        line.clear();
        if c.read_line(&mut line).await? == 0 {
            return Err(bad("closed in headers"));
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| bad("content-length"))?;
            }
        }
    }
    let mut body = vec![0u8; length];
    c.read_exact(&mut body).await?;
    Ok(c)
}

async fn run(args: Args) -> Result<String, String> {
    if args.rate == 0 || args.connections == 0 {
        return Err("--rate and --connections must be at least 1".into());
    }
    let duration = ward_traffic::parse_duration(&args.duration)?;
    let total = (duration.as_secs_f64() * f64::from(args.rate)) as u64;
    let start = Instant::now() + Duration::from_millis(100);
    let args = std::sync::Arc::new(args);
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let args = args.clone();
        tasks.push(tokio::spawn(
            async move { worker(&args, i, start, total).await },
        ));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.map_err(|e| e.to_string())??;
        all.add(h).map_err(|e| e.to_string())?;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(format!(
        "requests={} errors={errors} rate={:.0} p50_us={} p99_us={} p999_us={} max_us={}",
        all.len(),
        all.len() as f64 / elapsed,
        all.value_at_quantile(0.5),
        all.value_at_quantile(0.99),
        all.value_at_quantile(0.999),
        all.max()
    ))
}

fn main() -> ExitCode {
    let args = match ward_cli::parse::<Args>("ward-load") {
        Ok(a) => a,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ward-load: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(line) => {
            let _ = writeln!(std::io::stdout(), "{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ward-load: error: {e}");
            ExitCode::FAILURE
        }
    }
}
