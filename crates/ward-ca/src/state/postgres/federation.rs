//! Foreign bundles (federation) in PostgreSQL: the same statements as SQLite's.

use super::{bounded, db, PgStore};
use crate::authority::records::FederatedRecord;
use crate::state::error::StateError;
use crate::state::sqlite::federation_sql::{DELETE, SELECT, UPSERT};

impl PgStore {
    pub(in crate::state) async fn federated(&self) -> Result<Vec<FederatedRecord>, StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            let rows = c.client().query(SELECT, &[]).await.map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| FederatedRecord {
                    trust_domain: r.get(0),
                    document: r.get(1),
                    sequence: r.get(2),
                    refreshed_at: r.get(3),
                })
                .collect())
        })
        .await
    }

    pub(in crate::state) async fn store_federated(
        &self,
        r: FederatedRecord,
    ) -> Result<(), StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            c.client()
                .execute(
                    UPSERT,
                    &[&r.trust_domain, &r.document, &r.sequence, &r.refreshed_at],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(in crate::state) async fn forget_federated(&self, td: String) -> Result<bool, StateError> {
        bounded(async {
            let c = self.pool.get().await?;
            let n = c.client().execute(DELETE, &[&td]).await.map_err(db)?;
            Ok(n > 0)
        })
        .await
    }
}
