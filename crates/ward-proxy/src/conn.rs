//! One connection's record: opened, decided, relayed, closed; turned into the access-log
//! event and the per-connection metrics exactly once, when it is dropped.

use std::sync::Arc;
use std::time::Instant;

use ward_identity::SpiffeId;
use ward_policy::Verdict;

use crate::metrics::{BytesLabels, CloseLabels, ConnLabels, DecisionLabels, LabelText, Metrics};
use crate::pipe::{CloseCode, Traffic};

/// Everything known about a connection, logged when it ends.
#[derive(Debug)]
pub struct ConnRecord {
    metrics: Arc<Metrics>,
    labels: ConnLabels,
    started: Instant,
    /// The network peer's verified SPIFFE ID, once known.
    pub peer: Option<SpiffeId>,
    /// The policy verdict (inbound only).
    pub verdict: Option<Verdict>,
    /// Bytes relayed.
    pub traffic: Traffic,
    /// Why it ended (a code) and any detail.
    pub close: (CloseCode, String),
    /// The TLS session was resumed rather than negotiated in full.
    pub resumed: bool,
    /// The negotiated key-exchange group (`-` before the handshake completes).
    pub key_exchange: &'static str,
    /// Holds the connection's slots (caps, the drain's count) until the record closes.
    _admission: ward_daemon::Admission,
}

impl ConnRecord {
    /// Opens a record for a connection accepted on `listener`.
    pub fn open(
        metrics: Arc<Metrics>,
        listener: &str,
        direction: &'static str,
        admission: ward_daemon::Admission,
    ) -> Self {
        let labels = ConnLabels {
            listener: listener.to_owned(),
            direction,
        };
        metrics.opened.get_or_create(&labels).inc();
        metrics.active.get_or_create(&labels).inc();
        Self {
            metrics,
            labels,
            started: Instant::now(),
            peer: None,
            verdict: None,
            traffic: Traffic::default(),
            close: (CloseCode::Done, String::new()),
            resumed: false,
            key_exchange: "-",
            _admission: admission,
        }
    }

    /// Records and counts a policy decision.
    pub fn decided(&mut self, peer: SpiffeId, verdict: Verdict) {
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                listener: self.labels.listener.clone(),
                decision: verdict.label(),
                rule: LabelText(verdict.rule().to_owned()),
            })
            .inc();
        self.peer = Some(peer);
        self.verdict = Some(verdict);
    }

    /// Records a handshake failure with its reason code.
    pub fn handshake_failed(&mut self, reason: &'static str, detail: String) {
        self.metrics
            .handshake_failed(&self.labels.listener, self.labels.direction, reason);
        self.close = (CloseCode::Handshake(reason), detail);
    }

    /// Records how the TLS handshake went: counted by key-exchange group and kind (resumed
    /// sessions also in their own counter), the group kept for the access log.
    pub fn handshake_done(&mut self, tls: &rustls::CommonState) {
        let kind = tls.handshake_kind();
        if kind == Some(rustls::HandshakeKind::Resumed) {
            self.resumed = true;
            self.metrics.resumed.get_or_create(&self.labels).inc();
        }
        self.key_exchange =
            self.metrics
                .handshake(&self.labels.listener, self.labels.direction, tls);
    }

    /// Sets the close reason.
    pub fn closed(&mut self, code: CloseCode, detail: impl Into<String>) {
        self.close = (code, detail.into());
    }
}

impl Drop for ConnRecord {
    fn drop(&mut self) {
        let (from_peer, to_peer) = self.traffic.get();
        let secs = self.started.elapsed().as_secs_f64();
        let m = &self.metrics;
        let listener = self.labels.listener.clone();
        let direction = self.labels.direction;
        m.active.get_or_create(&self.labels).dec();
        m.closed
            .get_or_create(&CloseLabels {
                listener: listener.clone(),
                direction,
                reason: self.close.0.as_str(),
            })
            .inc();
        m.duration.get_or_create(&self.labels).observe(secs);
        m.bytes
            .get_or_create(&BytesLabels {
                listener: listener.clone(),
                direction,
                flow: "in",
            })
            .inc_by(from_peer);
        m.bytes
            .get_or_create(&BytesLabels {
                listener: listener.clone(),
                direction,
                flow: "out",
            })
            .inc_by(to_peer);
        tracing::info!(
            target: "ward::access",
            direction,
            listener = %listener,
            peer = self.peer.as_ref().map_or("-", |p| p.as_str()),
            decision = self.verdict.as_ref().map_or("-", |v| v.label()),
            rule = self.verdict.as_ref().map_or("-", |v| v.rule()),
            bytes_in = from_peer,
            bytes_out = to_peer,
            duration_ms = (secs * 1000.0) as u64,
            close = self.close.0.as_str(),
            resumed = self.resumed,
            key_exchange = self.key_exchange,
            detail = %self.close.1,
            "connection closed"
        );
    }
}
