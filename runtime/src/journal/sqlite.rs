//! The journal in `SQLite`: its own connection to the store's file.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{params_from_iter, types::Value};

use super::store::{COLUMNS, JournalStore};
use super::{Outcome, Record, Search};
use crate::dedupe::{SqliteFile, StoreError};

const SCHEMA: &str = "
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
            file: SqliteFile::open(path, SCHEMA, NAME)?,
        })
    }
}

#[async_trait::async_trait]
impl JournalStore for SqliteJournal {
    async fn insert(&self, rows: Vec<Record>) -> Result<(), StoreError> {
        self.file
            .write(NAME, move |conn| {
                {
                    let mut insert = conn.prepare_cached(&format!(
                        "INSERT INTO replicate_webhook_journal ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
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
                        ])?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let (clause, values) = where_clause(search);
        let limit = i64::try_from(search.limit()).unwrap_or(i64::MAX);
        self.file
            .read(NAME, move |conn| {
                let mut query = conn.prepare_cached(&format!(
                    "SELECT id, {COLUMNS} FROM replicate_webhook_journal{clause} \
                 ORDER BY id DESC LIMIT {limit}"
                ))?;
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
                conn.execute(
                    "DELETE FROM replicate_webhook_journal WHERE id <= \
                 (SELECT id FROM replicate_webhook_journal ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                    [keep],
                )?;
                Ok(())
            })
            .await
    }
}

/// The filters of `search` as SQL with numbered parameters.
fn where_clause(search: &Search) -> (String, Vec<Value>) {
    let mut parts = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut add = |column: &str, op: &str, value: Value| {
        values.push(value);
        parts.push(format!("{column} {op} ?{}", values.len()));
    };
    if let Some(p) = &search.prediction_id {
        add("prediction_id", "=", Value::Text(p.clone()));
    }
    if let Some(m) = &search.model {
        add("model", "=", Value::Text(m.clone()));
    }
    if let Some(o) = search.outcome {
        add("outcome", "=", Value::Text(o.as_str().to_owned()));
    }
    if let Some(t) = search.since_ms {
        add("received_ms", ">=", Value::Integer(t));
    }
    if let Some(t) = search.until_ms {
        add("received_ms", "<", Value::Integer(t));
    }
    if parts.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", parts.join(" AND ")), values)
    }
}
