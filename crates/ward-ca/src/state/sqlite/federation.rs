//! Foreign bundles (federation) in SQLite: read them all, store one unless it would move its
//! sequence backwards, forget one. A stored sequence of -1 means the document carried none
//! (`spiffe_sequence` is optional), and sequences are compared only when both have one.

use rusqlite::params;

use super::SqliteStore;
use crate::authority::records::FederatedRecord;
use crate::state::error::StateError;

/// Inserts or replaces a bundle unless both have a sequence and the stored one is higher.
pub(crate) const UPSERT: &str = "INSERT INTO federated_bundles (trust_domain, document, sequence, refreshed_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document, sequence = excluded.sequence, refreshed_at = excluded.refreshed_at \
     WHERE excluded.sequence < 0 OR federated_bundles.sequence < 0 OR excluded.sequence >= federated_bundles.sequence";

/// Forgets one trust domain's bundle.
pub(crate) const DELETE: &str = "DELETE FROM federated_bundles WHERE trust_domain = $1";

/// Every stored foreign bundle.
pub(crate) const SELECT: &str =
    "SELECT trust_domain, document, sequence, refreshed_at FROM federated_bundles ORDER BY trust_domain";

impl SqliteStore {
    pub(in crate::state) fn federated(&self) -> Result<Vec<FederatedRecord>, StateError> {
        self.reads.read(|c| {
            let mut stmt = c.prepare(SELECT)?;
            let rows = stmt.query_map([], |r| {
                Ok(FederatedRecord {
                    trust_domain: r.get(0)?,
                    document: r.get(1)?,
                    sequence: r.get(2)?,
                    refreshed_at: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    pub(in crate::state) async fn store_federated(
        &self,
        r: FederatedRecord,
    ) -> Result<(), StateError> {
        self.writer
            .write(move |c| {
                c.execute(
                    UPSERT,
                    params![r.trust_domain, r.document, r.sequence, r.refreshed_at],
                )?;
                Ok(())
            })
            .await
    }

    pub(in crate::state) async fn forget_federated(&self, td: String) -> Result<bool, StateError> {
        let held = self.federated()?.iter().any(|r| r.trust_domain == td);
        self.writer
            .write(move |c| {
                c.execute(DELETE, params![td])?;
                Ok(())
            })
            .await?;
        Ok(held)
    }
}
