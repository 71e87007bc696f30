//! One `SQLite` file per process: a writer thread that commits what concurrent callers ask for in
//! one transaction (group commit), and a connection for the reads that need no write.
//!
//! A transaction per store call costs a commit per call, and one connection behind a mutex
//! serialises them: the durable default was a tenth of the memory store. Here every write of the
//! process (dedupe claims, inbox jobs, journal rows) goes to one thread, which takes what is
//! waiting, runs each request in a savepoint of one `BEGIN IMMEDIATE` transaction and commits
//! once. A caller is answered only after the commit that holds its write, so the durability
//! promises do not change: a claim is on disk before its handler runs, a done marker before the
//! 200. A request that fails is rolled back to its savepoint alone; a commit that fails fails
//! every request of its batch.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak, mpsc};
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;
use crate::migrate::Migrations;

/// Requests committed in one transaction at most: bounds the wait of the last one in a batch.
const MAX_BATCH: usize = 512;

/// Prepared statements kept per connection.
const STATEMENTS: usize = 64;

/// How long a transaction waits for another process that holds the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The files this process has open, so the dedupe store, the inbox and the journal of one file
/// share its writer (and its commits) instead of contending for its lock.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<SqliteFile>>>> = LazyLock::new(Mutex::default);

/// An open `SQLite` file: its writer thread and its reader connection.
pub(crate) struct SqliteFile {
    requests: mpsc::Sender<Box<dyn Request>>,
    /// `None` for a private database in memory, which only the writer's connection sees.
    reader: Option<Arc<Mutex<Connection>>>,
}

impl std::fmt::Debug for SqliteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFile").finish_non_exhaustive()
    }
}

impl SqliteFile {
    /// The file at `path`, opened once per process, with the tables of `parts` migrated in it.
    /// A new file is created owner-only (see [`open_private`]).
    pub(crate) fn open(
        path: &Path,
        parts: &[&Migrations],
        name: &'static str,
    ) -> Result<Arc<Self>, StoreError> {
        let error = |e: rusqlite::Error| StoreError::new(format_args!("{name}: {e}"));
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        // Created (owner-only) before it is canonicalised: the path must exist for that.
        let writer = open_private(path)?;
        let canonical = std::fs::canonicalize(path).map_err(|e| {
            StoreError::new(format_args!("{name}: cannot open {}: {e}", path.display()))
        })?;
        // For a file open already, its new tables are created through a connection of their
        // own, committed before the first request.
        prepare(&writer, parts).map_err(error)?;
        if let Some(file) = open.get(&canonical).and_then(Weak::upgrade) {
            return Ok(file);
        }
        let reader = Connection::open(&canonical).map_err(error)?;
        reader.set_prepared_statement_cache_capacity(STATEMENTS);
        reader.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(error)?;
        let file = Arc::new(Self::start(writer, Some(reader)));
        open.retain(|_, file| file.strong_count() > 0);
        open.insert(canonical, Arc::downgrade(&file));
        Ok(file)
    }

    /// A private database in memory (for tests: nothing survives).
    pub(crate) fn in_memory(
        parts: &[&Migrations],
        name: &'static str,
    ) -> Result<Arc<Self>, StoreError> {
        let error = |e: rusqlite::Error| StoreError::new(format_args!("{name}: {e}"));
        let writer = Connection::open_in_memory().map_err(error)?;
        prepare(&writer, parts).map_err(error)?;
        Ok(Arc::new(Self::start(writer, None)))
    }

    fn start(writer: Connection, reader: Option<Connection>) -> Self {
        let (requests, waiting) = mpsc::channel();
        // The thread ends when the last handle (and so the last sender) is dropped.
        std::thread::Builder::new()
            .name("replicate-webhook-sqlite".into())
            .spawn(move || write(&writer, &waiting))
            .expect("the OS starts a thread");
        Self {
            requests,
            reader: reader.map(|c| Arc::new(Mutex::new(c))),
        }
    }

    /// Runs `work` in the next group commit and answers once that commit is on disk. `work`
    /// gets a connection inside a transaction: it must not begin one of its own. An error from
    /// `work` rolls back what it wrote, and nothing else.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        name: &'static str,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_or(name, work).await
    }

    /// [`SqliteFile::write`] for work that fails with a [`StoreError`] of its own too.
    pub(crate) async fn write_or<T: Send + 'static, E: Failure>(
        &self,
        name: &'static str,
        work: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, StoreError> {
        let stopped = || StoreError::new(format_args!("{name}: the writer thread stopped"));
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = Pending {
            name,
            work: Some(work),
            result: None,
            reply,
            failure: PhantomData,
        };
        self.requests
            .send(Box::new(request))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `work`, which only reads, on the reader connection: it sees every committed write and
    /// does not wait behind the writer's batch. In memory it runs on the writer.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        name: &'static str,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(reader) = &self.reader else {
            return self.write(name, work).await;
        };
        let reader = Arc::clone(reader);
        tokio::task::spawn_blocking(move || {
            work(&reader.lock().unwrap_or_else(PoisonError::into_inner))
        })
        .await
        .map_err(|e| StoreError::new(format_args!("{name}: read task failed: {e}")))?
        .map_err(|e| e.into_store_error(name))
    }
}

/// Opens the database at `path`, creating it owner-only (`0600`) when it does not exist. An
/// existing file keeps the mode its owner gave it; one that others can read is warned about.
fn open_private(path: &Path) -> Result<Connection, StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Ok(meta) = std::fs::metadata(path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        path = %path.display(),
                        "the SQLite database is readable by other users; `chmod 600` it and its -wal and -shm files"
                    );
                }
            }
            Err(e) => {
                return Err(StoreError::new(format_args!(
                    "sqlite: cannot create {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Connection::open(path).map_err(|e| StoreError::new(format_args!("sqlite: {e}")))
}

/// Sets a connection up: WAL, so readers go on while one writes, and NORMAL sync, durable against
/// a crashed or killed process (not against power loss of the last commits); then the
/// migrations of `parts`.
fn prepare(conn: &Connection, parts: &[&Migrations]) -> rusqlite::Result<()> {
    // Every statement of the store, the inbox and the journal stays prepared: the default cache
    // of 16 is smaller than they are, and re-preparing costs more than running most of them.
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    crate::migrate::sqlite(conn, parts)
}

/// What a request's work may fail with: a database error, or a store error (already named).
pub(crate) trait Failure: Send + 'static {
    /// The error its caller hears.
    fn into_store_error(self, name: &'static str) -> StoreError;
}

impl Failure for rusqlite::Error {
    fn into_store_error(self, name: &'static str) -> StoreError {
        StoreError::new(format_args!("{name}: {self}"))
    }
}

impl Failure for StoreError {
    fn into_store_error(self, _: &'static str) -> StoreError {
        self
    }
}

/// One caller's work and where its answer goes.
trait Request: Send {
    /// Runs the work inside the batch's transaction; `false` when it failed.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's commit is known.
    fn answer(self: Box<Self>, commit: Result<(), &str>);
}

struct Pending<F, T, E> {
    name: &'static str,
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
    failure: PhantomData<fn() -> E>,
}

impl<F, T, E> Request for Pending<F, T, E>
where
    F: FnOnce(&Connection) -> Result<T, E> + Send,
    T: Send,
    E: Failure,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panic in one caller's work must not stop the thread that serves every caller.
        let result = match std::panic::catch_unwind(AssertUnwindSafe(|| work(conn))) {
            Ok(result) => result.map_err(|e| e.into_store_error(self.name)),
            Err(_) => Err(StoreError::new(format_args!(
                "{}: the request panicked",
                self.name
            ))),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), &str>) {
        let name = self.name;
        let answer = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(StoreError::new(format_args!("{name}: {e}"))),
            (None, Ok(())) => Err(StoreError::new(format_args!(
                "{name}: the request did not run"
            ))),
        };
        // A caller that gave up (its timeout fired) no longer listens; its write stands.
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: takes what is waiting, commits it together, answers, again.
fn write(conn: &Connection, waiting: &mpsc::Receiver<Box<dyn Request>>) {
    let mut batch: Vec<Box<dyn Request>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = waiting.recv() {
        batch.push(first);
        batch.extend(waiting.try_iter().take(MAX_BATCH - 1));
        let commit = commit(conn, &mut batch).map_err(|e| e.to_string());
        for request in batch.drain(..) {
            request.answer(commit.as_ref().copied().map_err(String::as_str));
        }
    }
}

fn commit(conn: &Connection, batch: &mut [Box<dyn Request>]) -> rusqlite::Result<()> {
    let statement = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    statement("BEGIN IMMEDIATE")?;
    let mut run = || -> rusqlite::Result<()> {
        for request in batch.iter_mut() {
            statement("SAVEPOINT request")?;
            if !request.run(conn) {
                statement("ROLLBACK TO request")?;
            }
            statement("RELEASE request")?;
        }
        statement("COMMIT")
    };
    run().inspect_err(|_| {
        // Whatever the batch wrote is undone; each caller hears the error.
        let _ = conn.execute_batch("ROLLBACK");
    })
}
