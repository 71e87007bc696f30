//! A receiver's background tasks (the journal's writer, the reconciler), on a thread and runtime
//! of their own.
//!
//! Spawned on an actix worker's runtime, they would stop with that one worker (actix restarts a
//! worker whose thread panicked) while the receiver served on, and a receiver built outside any
//! runtime could not start them until a worker mounted it. Here they start when the receiver
//! is built and stop when it is dropped.

use std::future::Future;
use std::pin::Pin;

/// One background task.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The thread running a receiver's tasks; dropping it stops them (without waiting).
#[derive(Debug)]
pub(crate) struct Background {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Background {
    /// Runs `tasks` until the returned value is dropped; `None` when there is none to run.
    pub(crate) fn start(tasks: Vec<Task>) -> std::io::Result<Option<Self>> {
        if tasks.is_empty() {
            return Ok(None);
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("replicate-webhook-background".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    for task in tasks {
                        tokio::spawn(task);
                    }
                    // Resolves when the sender is dropped; the runtime, dropped after it,
                    // cancels the tasks.
                    let _ = stopped.await;
                });
            })?;
        Ok(Some(Self { _stop: stop }))
    }
}
