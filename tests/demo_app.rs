//! `ward-demo-app`: the tiny HTTP app behind each sidecar in `make demo`, and a free-port
//! helper for the demo script. Standard library only.
//!
//! `ward-demo-app serve ADDR NAME` answers every request with `hello from NAME` and logs the
//! caller identity it was given; `ward-demo-app free-port` prints an unused 127.0.0.1 port.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

fn serve(mut sock: TcpStream, name: &str) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 64 * 1024 {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("hello from {name}\n");
    let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    let _ = sock.write_all(resp.as_bytes());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["free-port"] => match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(addr) => {
                let _ = writeln!(std::io::stdout(), "{}", addr.port());
                ExitCode::SUCCESS
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "ward-demo-app: {e}");
                ExitCode::FAILURE
            }
        },
        ["serve", addr, name] => {
            let listener = match TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "ward-demo-app: cannot listen on {addr}: {e}"
                    );
                    return ExitCode::FAILURE;
                }
            };
            let name = (*name).to_owned();
            for sock in listener.incoming().flatten() {
                let name = name.clone();
                std::thread::spawn(move || serve(sock, &name));
            }
            ExitCode::SUCCESS
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "usage: ward-demo-app serve ADDR NAME | ward-demo-app free-port"
            );
            ExitCode::from(2)
        }
    }
}
