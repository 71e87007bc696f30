//! Schema migrations: one mechanism for both SQL engines.
//!
//! Each part that keeps tables (the dedupe store, the inbox, the journal, the live channel) lists
//! its migrations in order, once per engine. A database records, per part, how many of them it
//! has applied (`replicate_webhook_schema`), and applies the rest in one transaction under the
//! engine's lock (PostgreSQL: an advisory lock; SQLite: `BEGIN IMMEDIATE`), so instances that
//! start together apply each migration once.
//!
//! Every migration is written so that running it on a database that already has its effect is a
//! no-op (`IF NOT EXISTS`, [`Step::AddColumn`]): a database made before this table existed takes
//! them all as no-ops and is then recorded as up to date.

/// One migration.
#[derive(Debug)]
pub(crate) enum Step {
    /// Statements, run as one batch.
    Sql(&'static str),
    /// Adds a column unless the table has it. SQLite has no `ADD COLUMN IF NOT EXISTS`.
    AddColumn {
        table: &'static str,
        column: &'static str,
        declaration: &'static str,
    },
}

/// A part's migrations for one engine: the n-th step is version n.
#[derive(Debug)]
pub(crate) struct Migrations {
    /// The part's name in `replicate_webhook_schema`.
    pub(crate) part: &'static str,
    pub(crate) steps: &'static [Step],
}

impl Migrations {
    /// The steps a database at `version` has yet to apply.
    fn after(&self, version: i64) -> &[Step] {
        let applied = usize::try_from(version).unwrap_or(0);
        self.steps.get(applied..).unwrap_or_default()
    }

    fn latest(&self) -> i64 {
        i64::try_from(self.steps.len()).unwrap_or(i64::MAX)
    }
}

// The same text for both engines: SQLite reads `$1` as a parameter too, bound by position.
const VERSIONS: &str = "CREATE TABLE IF NOT EXISTS replicate_webhook_schema (
    part TEXT PRIMARY KEY NOT NULL,
    version BIGINT NOT NULL
)";
const VERSION_OF: &str = "SELECT version FROM replicate_webhook_schema WHERE part = $1";
const RECORD: &str = "INSERT INTO replicate_webhook_schema (part, version) VALUES ($1, $2) \
                      ON CONFLICT (part) DO UPDATE SET version = excluded.version";

/// Applies what `parts` lack to the SQLite database of `conn`, in one transaction.
///
/// An up-to-date file (every open after the first) is only read: the write lock, which the
/// file's writer thread and other processes contend for, is taken only when a part is behind.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite(conn: &rusqlite::Connection, parts: &[&Migrations]) -> rusqlite::Result<()> {
    if sqlite_up_to_date(conn, parts)? {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(VERSIONS)?;
    for part in parts {
        // Read again under the lock: another process may have migrated meanwhile.
        let version = sqlite_version(&tx, part)?;
        if version >= part.latest() {
            continue;
        }
        for step in part.after(version) {
            match step {
                Step::Sql(sql) => tx.execute_batch(sql)?,
                Step::AddColumn {
                    table,
                    column,
                    declaration,
                } => {
                    let has: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
                        [table, column],
                        |row| row.get(0),
                    )?;
                    if !has {
                        tx.execute_batch(&format!(
                            "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
                        ))?;
                    }
                }
            }
        }
        tx.execute(RECORD, rusqlite::params![part.part, part.latest()])?;
    }
    tx.commit()
}

/// Whether every part is recorded at its latest version, read without the write lock.
#[cfg(feature = "sqlite")]
fn sqlite_up_to_date(conn: &rusqlite::Connection, parts: &[&Migrations]) -> rusqlite::Result<bool> {
    let has_versions: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'replicate_webhook_schema')",
        [],
        |row| row.get(0),
    )?;
    if !has_versions {
        return Ok(false);
    }
    for part in parts {
        if sqlite_version(conn, part)? < part.latest() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The version `part` is recorded at (0 when it is not).
#[cfg(feature = "sqlite")]
fn sqlite_version(conn: &rusqlite::Connection, part: &Migrations) -> rusqlite::Result<i64> {
    use rusqlite::OptionalExtension as _;

    Ok(conn
        .query_row(VERSION_OF, [part.part], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Any constant: instances migrating one database at once serialise on it.
#[cfg(feature = "postgres")]
const LOCK: i64 = 0x7265_706c_6963_6174;

/// Applies what `parts` lack to the PostgreSQL database of `client`, in one transaction.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres(
    client: &mut tokio_postgres::Client,
    parts: &[&Migrations],
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    tx.batch_execute(VERSIONS).await?;
    for part in parts {
        let version: i64 = tx
            .query_opt(VERSION_OF, &[&part.part])
            .await?
            .map_or(0, |row| row.get(0));
        if version >= part.latest() {
            continue;
        }
        for step in part.after(version) {
            match step {
                Step::Sql(sql) => tx.batch_execute(sql).await?,
                Step::AddColumn {
                    table,
                    column,
                    declaration,
                } => {
                    tx.batch_execute(&format!(
                        "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {declaration}"
                    ))
                    .await?;
                }
            }
        }
        tx.execute(RECORD, &[&part.part, &part.latest()]).await?;
    }
    tx.commit().await
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use rusqlite::Connection;

    use super::{Migrations, Step, sqlite};

    const STEPS: &[Step] = &[
        Step::Sql("CREATE TABLE IF NOT EXISTS t (a INTEGER)"),
        Step::AddColumn {
            table: "t",
            column: "b",
            declaration: "TEXT",
        },
        // Not idempotent: a second run would insert a second row.
        Step::Sql("INSERT INTO t (a, b) VALUES (3, 'third step')"),
    ];

    /// Part `t` made of `steps`.
    fn part(steps: &'static [Step]) -> Migrations {
        Migrations { part: "t", steps }
    }

    /// The first column of the one row `sql` selects.
    fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    fn version(conn: &Connection) -> i64 {
        one(
            conn,
            "SELECT version FROM replicate_webhook_schema WHERE part = 't'",
        )
    }

    fn rows(conn: &Connection) -> i64 {
        one(conn, "SELECT count(*) FROM t")
    }

    #[test]
    fn each_step_runs_once_and_an_older_database_gets_the_steps_it_lacks() {
        let conn = Connection::open_in_memory().unwrap();
        sqlite(&conn, &[&part(&STEPS[..1])]).unwrap();
        assert_eq!(version(&conn), 1);
        let all = part(STEPS);
        sqlite(&conn, &[&all]).unwrap();
        sqlite(&conn, &[&all]).unwrap();
        assert_eq!(version(&conn), 3);
        assert_eq!(rows(&conn), 1, "the third step ran once");
        assert_eq!(one::<String>(&conn, "SELECT b FROM t"), "third step");
    }

    #[test]
    fn a_database_made_before_versions_were_recorded_keeps_its_tables_and_rows() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'kept')")
            .unwrap();
        let idempotent = part(&STEPS[..2]);
        sqlite(&conn, &[&idempotent]).unwrap();
        assert_eq!(version(&conn), 2);
        assert_eq!(rows(&conn), 1);
    }

    /// Every open after the first only reads: it succeeds while another connection holds the
    /// file's write lock (as the file's writer thread or another process may), where taking the
    /// lock would wait out the busy timeout and fail.
    #[test]
    fn an_up_to_date_file_is_opened_without_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let all = part(&STEPS[..2]);
        let first = Connection::open(&path).unwrap();
        sqlite(&first, &[&all]).unwrap();
        first.execute_batch("BEGIN IMMEDIATE").unwrap();
        let second = Connection::open(&path).unwrap();
        second.busy_timeout(std::time::Duration::ZERO).unwrap();
        sqlite(&second, &[&all]).unwrap();
        first.execute_batch("COMMIT").unwrap();
        let behind = part(STEPS);
        first.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert!(
            sqlite(&second, &[&behind]).is_err(),
            "a part that is behind takes the lock"
        );
    }

    #[test]
    fn a_failing_step_applies_nothing_of_its_part() {
        let conn = Connection::open_in_memory().unwrap();
        let broken = part(&[
            Step::Sql("CREATE TABLE t (a INTEGER)"),
            Step::Sql("CREATE TABLE t (a INTEGER)"),
        ]);
        assert!(sqlite(&conn, &[&broken]).is_err());
        let tables: i64 = one(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name IN ('t', 'replicate_webhook_schema')",
        );
        assert_eq!(tables, 0, "rolled back whole");
    }
}
