//! The journal in `PostgreSQL`: its own small pool, the table created on first use.

use tokio_postgres::types::ToSql;

use super::store::{COLUMNS, JournalStore, Param};
use super::{Outcome, Record, Search};
use crate::dedupe::{PostgresDb, StoreError};
use crate::migrate::{Migrations, Step};

const MIGRATIONS: Migrations = Migrations {
    part: "journal",
    steps: &[
        Step::Sql(TABLE),
        super::store::TENANT_COLUMN,
        super::store::NO_PREDICTION_INDEX,
    ],
};

/// The table as the first release made it.
const TABLE: &str = "
CREATE TABLE IF NOT EXISTS replicate_webhook_journal (
    id BIGSERIAL PRIMARY KEY,
    received_ms BIGINT NOT NULL,
    webhook_id TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    model TEXT NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    duration_us BIGINT,
    body TEXT
);
CREATE INDEX IF NOT EXISTS replicate_webhook_journal_received ON replicate_webhook_journal (received_ms);
CREATE INDEX IF NOT EXISTS replicate_webhook_journal_prediction ON replicate_webhook_journal (prediction_id, id);
";

pub(crate) struct PostgresJournal {
    db: PostgresDb,
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(pg_error)`
fn pg_error(e: impl std::fmt::Display) -> StoreError {
    // `Display` of a tokio-postgres error never includes the connection string.
    StoreError::new(format_args!("journal postgres: {e}"))
}

impl PostgresJournal {
    /// A journal for `url`, connecting lazily; every wait is bounded.
    pub(crate) fn new(url: &str) -> Result<Self, StoreError> {
        // The writer uses one connection; the dashboard's queries the others.
        Ok(Self {
            db: PostgresDb::new(url, 4, &[&MIGRATIONS], "journal postgres")?,
        })
    }
}

#[async_trait::async_trait]
impl JournalStore for PostgresJournal {
    async fn insert(&self, rows: Vec<Record>) -> Result<(), StoreError> {
        let mut client = self.db.client_or(pg_error, pg_error).await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO replicate_webhook_journal ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .await
            .map_err(pg_error)?;
        for row in &rows {
            tx.execute(
                &insert,
                &[
                    &row.received_ms,
                    &row.webhook_id,
                    &row.prediction_id,
                    &row.model,
                    &row.event,
                    &row.status,
                    &i32::from(row.http_status),
                    &row.outcome.as_str(),
                    &row.detail,
                    &row.duration_us,
                    &row.body,
                    &row.tenant,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let client = self.db.client_or(pg_error, pg_error).await?;
        let (query, values) = super::store::select(search);
        let params: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|v| match v {
                Param::Text(text) => text as &(dyn ToSql + Sync),
                Param::Int(n) => n,
            })
            .collect();
        let rows = client.query(&query, &params).await.map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|row| Record {
                id: row.get(0),
                received_ms: row.get(1),
                webhook_id: row.get(2),
                prediction_id: row.get(3),
                model: row.get(4),
                event: row.get(5),
                status: row.get(6),
                http_status: u16::try_from(row.get::<_, i32>(7)).unwrap_or(0),
                outcome: Outcome::parse(row.get(8)).unwrap_or(Outcome::Ignored),
                detail: row.get(9),
                duration_us: row.get(10),
                body: row.get(11),
                tenant: row.get(12),
            })
            .collect())
    }

    async fn trim(&self, keep: u64, before_ms: i64) -> Result<(), StoreError> {
        let client = self.db.client_or(pg_error, pg_error).await?;
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        client
            .execute(
                "DELETE FROM replicate_webhook_journal WHERE received_ms < $1",
                &[&before_ms],
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(
                "DELETE FROM replicate_webhook_journal WHERE id <= \
                 (SELECT id FROM replicate_webhook_journal ORDER BY id DESC LIMIT 1 OFFSET $1)",
                &[&keep],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}
