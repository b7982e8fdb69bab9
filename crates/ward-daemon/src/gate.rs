//! Admission of accepted connections: a global cap and an optional per-client-IP cap, both
//! checked before the daemon spends anything on the connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::lifecycle::{ConnGuard, Lifecycle};

/// Why a connection was closed at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The daemon holds its maximum of connections.
    MaxConnections,
    /// This client address holds its maximum.
    PerIpLimit,
}

impl Refusal {
    /// The metric label (`max_connections`, `per_ip_limit`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::PerIpLimit => "per_ip_limit",
        }
    }
}

/// The caps one listener (or several sharing it) admits connections under.
#[derive(Clone, Debug)]
pub struct Gate {
    permits: Arc<Semaphore>,
    per_ip: Option<Arc<IpSlots>>,
}

#[derive(Debug)]
struct IpSlots {
    held: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

/// One admitted connection's slots, given back when it is dropped; and its registration
/// with the lifecycle, which the daemon may take to hold elsewhere.
#[derive(Debug)]
pub struct Admission {
    /// Counts the connection as live until dropped (shutdown waits for it).
    pub tracked: ConnGuard,
    _permit: OwnedSemaphorePermit,
    _ip: Option<IpSlot>,
}

#[derive(Debug)]
struct IpSlot {
    slots: Arc<IpSlots>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

impl Gate {
    /// At most `max` connections at once.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            per_ip: None,
        }
    }

    /// And at most `max` at once from one client IP address.
    pub fn per_ip(mut self, max: usize) -> Self {
        self.per_ip = Some(Arc::new(IpSlots {
            held: Mutex::new(HashMap::new()),
            max,
        }));
        self
    }

    /// Admits a connection from `peer`, or says why not.
    pub fn admit(&self, peer: SocketAddr, lifecycle: &Lifecycle) -> Result<Admission, Refusal> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::MaxConnections)?;
        let ip = match &self.per_ip {
            None => None,
            Some(slots) => {
                let mut held = slots.held.lock().unwrap_or_else(|p| p.into_inner());
                let n = held.entry(peer.ip()).or_insert(0);
                if *n >= slots.max {
                    return Err(Refusal::PerIpLimit);
                }
                *n += 1;
                Some(IpSlot {
                    slots: slots.clone(),
                    ip: peer.ip(),
                })
            }
        };
        Ok(Admission {
            tracked: lifecycle.track(),
            _permit: permit,
            _ip: ip,
        })
    }
}
