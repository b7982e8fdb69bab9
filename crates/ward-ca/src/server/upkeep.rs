//! Upkeep of the state: the records of certificates that expired more than
//! [`KEEP_EXPIRED`] ago are deleted, at start and then every [`PRUNE_EVERY`], so renewals
//! (each a new row) cannot grow the database without bound.
//!
//! What stays: every record of a certificate that is valid or expired less than a week ago
//! (what `/v1/renew` and the other mTLS endpoints check a presented certificate against,
//! what `rotate finish` counts, what `certs list` shows for a recent incident), every
//! revocation (an ID revocation covers what was issued up to it), and every join token.
//! The audit trail of older issuance is the `ward::audit` log, kept wherever logs are kept.
//! Every replica prunes; the deletion is the same whoever runs it.

use std::sync::Arc;
use std::time::Duration;

use super::CaService;
use crate::state::unix_now;

/// How long the record of an expired certificate is kept.
pub const KEEP_EXPIRED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Prunes now, then every [`PRUNE_EVERY`], for as long as the CA runs.
pub(super) async fn prune_records(service: Arc<CaService>) {
    loop {
        let before = unix_now() - KEEP_EXPIRED.as_secs() as i64;
        match service.state.prune_certs(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                pruned = n,
                kept_after_expiry_days = KEEP_EXPIRED.as_secs() / 86_400,
                "records of long-expired certificates deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "could not prune records of expired certificates"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}
