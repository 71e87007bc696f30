//! The journal in `SQLite`: a table in the store's file, written in the file's group commits.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{params_from_iter, types::Value};

use super::store::{self, COLUMNS, JournalStore, Param};
use super::{Outcome, Record, Search};
use crate::dedupe::{SqliteFile, StoreError};
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    webhook_id TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    model TEXT NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    duration_us INTEGER,
    body TEXT
);
CREATE INDEX IF NOT EXISTS replicate_webhook_journal_received ON replicate_webhook_journal (received_ms);
CREATE INDEX IF NOT EXISTS replicate_webhook_journal_prediction ON replicate_webhook_journal (prediction_id, id);
";

#[derive(Debug)]
pub(crate) struct SqliteJournal {
    file: Arc<SqliteFile>,
}

/// How the journal's errors begin.
const NAME: &str = "journal sqlite";

impl SqliteJournal {
    /// The journal's table in the file at `path`; its rows are written in the file's group
    /// commits, beside the claims of the deliveries they record.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            file: SqliteFile::open(path, &[&MIGRATIONS], NAME)?,
        })
    }
}

#[async_trait::async_trait]
impl JournalStore for SqliteJournal {
    async fn insert(&self, rows: Vec<Record>) -> Result<(), StoreError> {
        self.file
            .write(NAME, move |conn| {
                let mut insert = conn.prepare_cached(&format!(
                    "INSERT INTO replicate_webhook_journal ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ))?;
                for row in &rows {
                    insert.execute(rusqlite::params![
                        row.received_ms,
                        row.webhook_id,
                        row.prediction_id,
                        row.model,
                        row.event,
                        row.status,
                        row.http_status,
                        row.outcome.as_str(),
                        row.detail,
                        row.duration_us,
                        row.body,
                        row.tenant,
                    ])?;
                }
                Ok(())
            })
            .await
    }

    async fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let (query, values) = store::select(search);
        let values = values.into_iter().map(|v| match v {
            Param::Text(text) => Value::Text(text),
            Param::Int(n) => Value::Integer(n),
        });
        self.file
            .read(NAME, move |conn| {
                let mut query = conn.prepare_cached(&query)?;
                let rows = query.query_map(params_from_iter(values), |row| {
                    let outcome: String = row.get(8)?;
                    Ok(Record {
                        id: row.get(0)?,
                        received_ms: row.get(1)?,
                        webhook_id: row.get(2)?,
                        prediction_id: row.get(3)?,
                        model: row.get(4)?,
                        event: row.get(5)?,
                        status: row.get(6)?,
                        http_status: row.get(7)?,
                        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Ignored),
                        detail: row.get(9)?,
                        duration_us: row.get(10)?,
                        body: row.get(11)?,
                        tenant: row.get(12)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn trim(&self, keep: u64, before_ms: i64) -> Result<(), StoreError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.file
            .write(NAME, move |conn| {
                conn.execute(
                    "DELETE FROM replicate_webhook_journal WHERE received_ms < ?1",
                    [before_ms],
                )?;
                // Ids only grow (AUTOINCREMENT, and rows go oldest first), so the newest `keep`
                // rows are those above `max(id) - keep`: two lookups of the rowid index, where
                // an `OFFSET keep` walked `keep` index entries on every trim.
                conn.prepare_cached(
                    "DELETE FROM replicate_webhook_journal WHERE id <= \
                     (SELECT max(id) FROM replicate_webhook_journal) - ?1",
                )?
                .execute([keep])?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    #[actix_web::test]
    async fn a_journal_made_before_tenants_gets_the_column_and_keeps_its_rows() {
        let path = std::env::temp_dir().join(format!(
            "replicate-webhook-journal-{}-{}.db",
            std::process::id(),
            crate::clock::now_ms()
        ));
        {
            // The table as the first release made it, with one row.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE replicate_webhook_journal (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL,
                    webhook_id TEXT NOT NULL, prediction_id TEXT NOT NULL, model TEXT NOT NULL,
                    event TEXT NOT NULL, status TEXT NOT NULL, http_status INTEGER NOT NULL,
                    outcome TEXT NOT NULL, detail TEXT, duration_us INTEGER, body TEXT);
                 INSERT INTO replicate_webhook_journal (received_ms, webhook_id, prediction_id,
                    model, event, status, http_status, outcome)
                    VALUES (1, 'msg_old', 'old', 'a/b', 'completed', 'succeeded', 200, 'ran');",
            )
            .unwrap();
        }
        // Opened twice, as two processes starting together would: both see the column.
        let journal = SqliteJournal::open(&path).unwrap();
        SqliteJournal::open(&path).unwrap();
        let mut row = journal.search(&Search::default()).await.unwrap().remove(0);
        assert_eq!(
            (row.prediction_id.as_str(), row.tenant.as_deref()),
            ("old", None)
        );
        row.webhook_id = "msg_new".to_owned();
        row.tenant = Some("acme".to_owned());
        journal.insert(vec![row]).await.unwrap();
        let rows = journal.search(&Search::default()).await.unwrap();
        assert_eq!(rows[0].tenant.as_deref(), Some("acme"));
        assert_eq!(rows[1].tenant, None);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
