//! `ward-soak`: the traffic of `make soak` (scripts/soak.sh).
//!
//! `ward-soak echo --listen ADDR` is the app behind the sidecars: it sends back every byte it
//! receives, on every connection it accepts. `ward-soak drive --addr A,B --connections N`
//! holds N connections open through the sidecars (spread over the addresses in turn) for the
//! duration. Each connection sends a 64-byte numbered message every `interval` (the first at
//! a random offset, so the load is even) and must read exactly that message back within
//! `timeout`. After a random lifetime between `min-life` and `max-life` a connection closes
//! and a new one takes its place at once, so fresh handshakes (with whatever certificates the
//! sidecars hold by then) happen all through the run. Anything else is an error, by kind: a
//! refused or failed connect, a close by the other side, no answer in time, a wrong answer.
//! Every `report` it prints `t=.. open=.. opened=.. messages=.. errors=..`; at the end one
//! `summary` line, and the exit status is 1 if any error happened.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, sleep_until, timeout, Instant};

/// Length of every message; the echo must match it byte for byte.
const MESSAGE: usize = 64;

#[derive(Debug, Parser)]
#[command(
    name = "ward-soak",
    version,
    about = "Long-running traffic for make soak"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Echo every byte back, on every connection.
    Echo {
        /// `host:port` to listen on.
        #[arg(long)]
        listen: String,
    },
    /// Hold connections with traffic and count every error.
    Drive(Drive),
}

#[derive(Debug, clap::Args)]
struct Drive {
    /// Comma-separated `host:port`s; connection i goes to address i mod count.
    #[arg(long, value_delimiter = ',')]
    addr: Vec<String>,
    /// Connections held open at once.
    #[arg(long, default_value_t = 10_000)]
    connections: u32,
    /// How long to run, e.g. 10m.
    #[arg(long, default_value = "10m")]
    duration: String,
    /// Time between two messages on one connection.
    #[arg(long, default_value = "5s")]
    interval: String,
    /// Shortest and longest life of a connection before it is replaced.
    #[arg(long, default_value = "2m")]
    min_life: String,
    #[arg(long, default_value = "5m")]
    max_life: String,
    /// How long an echo may take.
    #[arg(long, default_value = "10s")]
    timeout: String,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 500)]
    ramp: u32,
    /// How often to print a progress line.
    #[arg(long, default_value = "30s")]
    report: String,
}

/// Counters shared by every connection task.
#[derive(Debug, Default)]
struct Stats {
    open: AtomicU64,
    opened: AtomicU64,
    messages: AtomicU64,
    connect: AtomicU64,
    closed: AtomicU64,
    timeout: AtomicU64,
    mismatch: AtomicU64,
}

impl Stats {
    fn errors(&self) -> u64 {
        [&self.connect, &self.closed, &self.timeout, &self.mismatch]
            .iter()
            .map(|c| c.load(Relaxed))
            .sum()
    }

    fn line(&self, secs: u64) -> String {
        format!(
            "t={secs}s open={} opened={} messages={} errors={} connect={} closed={} timeout={} mismatch={}",
            self.open.load(Relaxed),
            self.opened.load(Relaxed),
            self.messages.load(Relaxed),
            self.errors(),
            self.connect.load(Relaxed),
            self.closed.load(Relaxed),
            self.timeout.load(Relaxed),
            self.mismatch.load(Relaxed),
        )
    }
}

/// Timing of the run, parsed once.
#[derive(Debug, Clone, Copy)]
struct Plan {
    end: Instant,
    interval: Duration,
    min_life: Duration,
    max_life: Duration,
    timeout: Duration,
}

/// xorshift64*: enough randomness for offsets and lifetimes, without a dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn between(state: &mut u64, low: Duration, high: Duration) -> Duration {
    let span = high.saturating_sub(low).as_millis().max(1) as u64;
    low + Duration::from_millis(next_random(state) % span)
}

/// One slot: a connection, replaced whenever it ends, until the end of the run.
async fn slot(index: u32, addr: String, plan: Plan, stats: Arc<Stats>) {
    let mut rng =
        0x9E37_79B9_7F4A_7C15 ^ (u64::from(index) + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut seq = 0u64;
    let mut first = true;
    // A connection opened less than an interval before the end would carry no message.
    while Instant::now() + plan.interval < plan.end {
        let mut conn = match timeout(plan.timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(c)) => c,
            _ => {
                stats.connect.fetch_add(1, Relaxed);
                sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = conn.set_nodelay(true);
        stats.open.fetch_add(1, Relaxed);
        stats.opened.fetch_add(1, Relaxed);
        let until =
            (Instant::now() + between(&mut rng, plan.min_life, plan.max_life)).min(plan.end);
        let mut next = Instant::now()
            + if first {
                between(&mut rng, Duration::ZERO, plan.interval)
            } else {
                plan.interval
            };
        first = false;
        while next < until {
            sleep_until(next).await;
            seq += 1;
            let mut message = [b'.'; MESSAGE];
            let head = format!("{index}:{seq}:");
            message[..head.len()].copy_from_slice(head.as_bytes());
            let mut answer = [0u8; MESSAGE];
            let exchange = async {
                conn.write_all(&message).await?;
                conn.read_exact(&mut answer).await
            };
            match timeout(plan.timeout, exchange).await {
                Err(_) => stats.timeout.fetch_add(1, Relaxed),
                Ok(Err(_)) => stats.closed.fetch_add(1, Relaxed),
                Ok(Ok(_)) if answer != message => stats.mismatch.fetch_add(1, Relaxed),
                Ok(Ok(_)) => {
                    stats.messages.fetch_add(1, Relaxed);
                    next += plan.interval;
                    continue;
                }
            };
            break;
        }
        let _ = conn.shutdown().await;
        stats.open.fetch_sub(1, Relaxed);
    }
}

/// One line on stdout, flushed at once so the soak script sees it while the run goes on.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn drive(args: Drive) -> Result<bool, String> {
    if args.addr.is_empty() || args.connections == 0 || args.ramp == 0 {
        return Err("--addr, --connections and --ramp must not be empty or zero".into());
    }
    let parse = |s: &str| ward_traffic::parse_duration(s);
    let start = Instant::now();
    let plan = Plan {
        end: start + parse(&args.duration)?,
        interval: parse(&args.interval)?,
        min_life: parse(&args.min_life)?,
        max_life: parse(&args.max_life)?,
        timeout: parse(&args.timeout)?,
    };
    let report = parse(&args.report)?;
    let stats = Arc::new(Stats::default());
    let ramp_step = Duration::from_secs(1) / args.ramp;
    let mut tasks = Vec::with_capacity(args.connections as usize);
    for i in 0..args.connections {
        let addr = args.addr[i as usize % args.addr.len()].clone();
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            sleep_until(start + ramp_step * i).await;
            slot(i, addr, plan, stats).await;
        }));
    }
    let printer = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut at = start + report;
            loop {
                sleep_until(at).await;
                say(&stats.line(at.duration_since(start).as_secs()));
                at += report;
            }
        })
    };
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    printer.abort();
    say(&format!(
        "summary {}",
        stats.line(start.elapsed().as_secs())
    ));
    Ok(stats.errors() == 0)
}

async fn echo(listen: String) -> Result<bool, String> {
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("listen {listen}: {e}"))?;
    loop {
        match listener.accept().await {
            Ok((mut conn, _)) => {
                tokio::spawn(async move {
                    let _ = conn.set_nodelay(true);
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
            // Out of descriptors: wait for some to close rather than spin.
            Err(_) => sleep(Duration::from_millis(10)).await,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match ward_cli::parse::<Cli>("ward-soak") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Echo { listen } => echo(listen).await,
        Command::Drive(args) => drive(args).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ward-soak: error: {e}");
            ExitCode::FAILURE
        }
    }
}
