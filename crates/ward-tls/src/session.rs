//! TLS 1.3 session resumption between sidecars that gives up none of the checks.
//!
//! A resumed TLS 1.3 session skips certificates: the server learns nothing new about the
//! client and the client nothing new about the server; both take the identities of the full
//! handshake that created the session. rustls keeps those certificates but cannot know ward's
//! rules, so ward keeps its own record beside every session it stores: the peer's SVID as
//! verified, the trust-anchor epoch it was verified under, and our own certificate's serial at
//! the time. A stored session is handed back to rustls only if, *now*, the anchors are the
//! same, our own certificate has not been renewed, the peer's certificate is unexpired (with a
//! margin) and unrevoked, and (server side) the policy still admits the peer. Otherwise the
//! store answers "no session" and rustls falls back to a full handshake, which runs the
//! verifiers and refuses with the usual alert. Server sessions are stateful and single use
//! (no ticket key to steal or rotate, no replay), and 0-RTT stays off.
//!
//! The record is passed between verifier, resolver and store through a task-local scope
//! ([`scope`]), because rustls calls them synchronously inside the poll of one connection's
//! task. Outside a scope nothing is recorded and nothing is stored, so resumption is simply
//! off (the CA's endpoint and the pooled HTTP connections run that way).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::server::StoresServerSessions;
use rustls::NamedGroup;
use rustls_pki_types::ServerName;
use tokio::sync::watch;
use ward_identity::SvidLeaf;

use crate::bundle::BundleStore;
use crate::store::{CertStore, Identity};
use crate::verify::ClientAuthorizer;

/// A session is resumed only if the peer's certificate stays valid at least this long.
pub const EXPIRY_MARGIN_SECS: i64 = 30;
/// Sessions a server keeps (oldest dropped first); each holds the client's chain and costs
/// about 2 KiB, so the store stays under about 1 MiB. A client whose session was dropped
/// makes a full handshake, nothing worse.
pub const SERVER_SESSIONS: usize = 512;
/// Tickets a client keeps per server name.
pub const CLIENT_TICKETS_PER_SERVER: usize = 64;

tokio::task_local! {
    static FACTS: RefCell<Facts>;
}

/// What this connection's handshake established so far.
#[derive(Clone, Debug, Default)]
struct Facts {
    peer: Option<SvidLeaf>,
    anchors_epoch: Option<u64>,
    own_serial: Option<String>,
}

/// The record kept beside a stored session.
#[derive(Clone, Debug)]
struct Record {
    peer: SvidLeaf,
    anchors_epoch: u64,
    own_serial: String,
}

/// Runs one connection's handshake (and, client side, its reads, where tickets arrive) in a
/// scope where sessions can be recorded and resumed. A plain function rather than an `async
/// fn`: an `async fn` would keep its argument beside the future it awaits, doubling the size
/// of every connection's task.
pub fn scope<F: Future>(f: F) -> impl Future<Output = F::Output> {
    FACTS.scope(RefCell::new(Facts::default()), f)
}

fn with_facts(f: impl FnOnce(&mut Facts)) {
    let _ = FACTS.try_with(|facts| f(&mut facts.borrow_mut()));
}

/// Called by the verifiers after a peer verified in full.
pub(crate) fn record_peer(leaf: &SvidLeaf, anchors_epoch: u64) {
    with_facts(|f| {
        f.peer = Some(leaf.clone());
        f.anchors_epoch = Some(anchors_epoch);
    });
}

/// Called by the resolver when it presents our certificate.
pub(crate) fn record_own(serial: &str) {
    with_facts(|f| f.own_serial = Some(serial.to_owned()));
}

fn current_record() -> Option<Record> {
    FACTS
        .try_with(|facts| {
            let f = facts.borrow();
            Some(Record {
                peer: f.peer.clone()?,
                anchors_epoch: f.anchors_epoch?,
                own_serial: f.own_serial.clone()?,
            })
        })
        .ok()
        .flatten()
}

fn adopt(record: &Record) {
    with_facts(|f| {
        f.peer = Some(record.peer.clone());
        f.anchors_epoch = Some(record.anchors_epoch);
        f.own_serial = Some(record.own_serial.clone());
    });
}

/// Why a stored session is not resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    AnchorsChanged,
    OwnRenewed,
    PeerExpiring,
    PeerRevoked,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::AnchorsChanged => "trust anchors changed",
            Self::OwnRenewed => "own certificate renewed",
            Self::PeerExpiring => "peer certificate expires",
            Self::PeerRevoked => "peer certificate revoked",
        }
    }

    /// True when the reason holds for every session stored before this one as well.
    fn holds_for_older(self) -> bool {
        matches!(self, Self::AnchorsChanged | Self::OwnRenewed)
    }
}

/// What a store needs to judge a record against the present.
#[derive(Debug)]
struct Present {
    bundles: BundleStore,
    own: watch::Receiver<Option<Arc<Identity>>>,
}

impl Present {
    fn new(store: &CertStore) -> Self {
        Self {
            bundles: store.bundles().clone(),
            own: store.subscribe(),
        }
    }

    /// Why `record` may not be resumed now, if it may not.
    fn refuses(&self, record: &Record) -> Option<Refusal> {
        let bundles = self.bundles.current();
        let own_unchanged = self
            .own
            .borrow()
            .as_ref()
            .is_some_and(|i| i.leaf().serial_hex == record.own_serial);
        if record.anchors_epoch != bundles.anchors_epoch() {
            Some(Refusal::AnchorsChanged)
        } else if !own_unchanged {
            Some(Refusal::OwnRenewed)
        } else if record.peer.not_after - EXPIRY_MARGIN_SECS <= ward_identity::unix_now() {
            Some(Refusal::PeerExpiring)
        } else if bundles.revocation_for(&record.peer).is_some() {
            Some(Refusal::PeerRevoked)
        } else {
            None
        }
    }
}

/// A server's session store: stateful, single-use, bounded, checked on every resumption.
#[derive(Debug)]
pub struct ServerSessions {
    present: Present,
    authorizer: Option<Arc<dyn ClientAuthorizer>>,
    entries: Mutex<ServerEntries>,
}

#[derive(Debug, Default)]
struct ServerEntries {
    by_key: HashMap<Vec<u8>, (Vec<u8>, Record)>,
    order: VecDeque<Vec<u8>>,
}

impl ServerSessions {
    /// A store for a server presenting `store`'s identity, asking `authorizer` again on
    /// every resumption.
    pub fn new(store: &CertStore, authorizer: Option<Arc<dyn ClientAuthorizer>>) -> Self {
        Self {
            present: Present::new(store),
            authorizer,
            entries: Mutex::new(ServerEntries::default()),
        }
    }
}

impl StoresServerSessions for ServerSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Some(record) = current_record() else {
            return false;
        };
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        while entries.by_key.len() >= SERVER_SESSIONS {
            let Some(old) = entries.order.pop_front() else {
                break;
            };
            entries.by_key.remove(&old);
        }
        entries.order.push_back(key.clone());
        entries.by_key.insert(key, (value, record));
        true
    }

    fn get(&self, _key: &[u8]) -> Option<Vec<u8>> {
        None // TLS 1.2 session IDs; ward speaks TLS 1.3 only.
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (value, record) = {
            let mut entries = self.entries.lock().ok()?;
            let found = entries.by_key.remove(key)?;
            entries.order.retain(|k| k != key);
            found
        };
        if let Some(why) = self.present.refuses(&record) {
            tracing::debug!(peer = %record.peer.id, why = why.as_str(), "session not resumed");
            return None;
        }
        if let Some(authorizer) = &self.authorizer {
            if !authorizer.authorize(&record.peer) {
                // The full handshake that follows asks again and sends `access_denied`.
                return None;
            }
        }
        adopt(&record);
        Some(value)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// A client's ticket store: TLS 1.3 tickets per server name, checked on every resumption.
#[derive(Debug)]
pub struct ClientSessions {
    present: Present,
    tickets: Mutex<HashMap<ServerName<'static>, VecDeque<(Tls13ClientSessionValue, Record)>>>,
    kx_hints: Mutex<HashMap<ServerName<'static>, NamedGroup>>,
}

impl ClientSessions {
    /// A store for a client presenting `store`'s identity.
    pub fn new(store: &CertStore) -> Self {
        Self {
            present: Present::new(store),
            tickets: Mutex::new(HashMap::new()),
            kx_hints: Mutex::new(HashMap::new()),
        }
    }
}

impl ClientSessionStore for ClientSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        if let Ok(mut hints) = self.kx_hints.lock() {
            hints.insert(server_name, group);
        }
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.kx_hints.lock().ok()?.get(server_name).copied()
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let Some(record) = current_record() else {
            return;
        };
        let Ok(mut tickets) = self.tickets.lock() else {
            return;
        };
        let queue = tickets.entry(server_name).or_default();
        if queue.len() >= CLIENT_TICKETS_PER_SERVER {
            queue.pop_front();
        }
        queue.push_back((value, record));
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let mut tickets = self.tickets.lock().ok()?;
        let queue = tickets.get_mut(server_name)?;
        // Newest first: the freshest ticket is the likeliest to be accepted.
        while let Some((value, record)) = queue.pop_back() {
            match self.present.refuses(&record) {
                None => {
                    adopt(&record);
                    return Some(value);
                }
                Some(why) => {
                    tracing::debug!(peer = %record.peer.id, why = why.as_str(), "ticket dropped");
                    if why.holds_for_older() {
                        queue.clear();
                    }
                }
            }
        }
        None
    }
}
