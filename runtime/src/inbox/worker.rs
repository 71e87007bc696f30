//! Workers: take jobs, run their handlers with the inline path's dispatch, settle them.
//!
//! A worker is one thread with a single-threaded runtime: handlers and actix extractors need not
//! be `Send`, exactly as on an actix worker. Each inbox module gets a loop that takes as many
//! jobs as it has free slots (`concurrency`), so a slow module never starves another.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument as _;

use super::request::Requests;
use super::{Hold, Inbox, InboxOptions, Job, Settle, module_key};
use crate::HandlerError;
use crate::backoff::Backoff;
use crate::config::{DataFn, WebhookConfig};
use crate::dedupe::{ClaimToken, Ttls, now_ms};
use crate::handler::{Call, DeadLetter, HandlerKind, Outcome, Verdict};
use crate::registry::{Module, SetupError};

/// How a worker retries recording a job's result: 100 ms doubling, five tries in about 3 s.
const SETTLE_RETRY: Backoff = Backoff {
    base_ms: 100,
    cap_ms: 1_600,
};

/// Runs the handlers of inbox jobs. Build one from the receiver's configuration, in the
/// receiver's process (the default) or in a process of its own:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use replicate_webhook::WebhookConfig;
/// use replicate_webhook::inbox::Worker;
///
/// // REPLICATE_WEBHOOK_INBOX=postgres://… in the environment.
/// let config = WebhookConfig::from_env()?;
/// let worker = Worker::new(&config)?.spawn()?;
/// // ... until SIGTERM:
/// worker.shutdown(); // stops taking jobs, waits for running ones up to the deadline
/// # Ok(()) }
/// ```
pub struct Worker {
    inbox: Inbox,
    modules: BTreeMap<String, Module>,
    options: InboxOptions,
    data: Vec<DataFn>,
    ttls: Ttls,
    wake: Option<watch::Receiver<u64>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("inbox", &self.inbox)
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A running worker thread. Dropping it asks the worker to stop without waiting.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Stops taking jobs and waits for running handlers, up to the configured deadline; jobs
    /// still running then are taken again after their visibility timeout.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Worker {
    /// A worker for every inbox module of `config` (registered with the attribute or added
    /// with [`WebhookConfig::module`]), with its inbox, options and `worker_data`.
    pub fn new(config: &WebhookConfig) -> Result<Self, SetupError> {
        let Some(inbox) = config.inbox.clone() else {
            return Err(SetupError::NoInbox {
                origin: "replicate_webhook::inbox::Worker".to_owned(),
            });
        };
        let modules: BTreeMap<String, Module> = config
            .every_module()
            .into_iter()
            .filter(|m| m.inbox)
            .map(|m| (module_key(&m), m))
            .collect();
        if modules.is_empty() {
            return Err(SetupError::NoInboxModules);
        }
        Ok(Self {
            inbox,
            modules,
            options: config.inbox_options.clone(),
            data: config.worker_data.clone(),
            ttls: Ttls::from(&config.policy),
            wake: None,
        })
    }

    /// Wakes the worker whenever this process stores a job.
    pub(crate) fn wake_on(mut self, wake: watch::Receiver<u64>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Starts the worker on a thread of its own.
    pub fn spawn(self) -> std::io::Result<WorkerHandle> {
        let (stop, stopped) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("replicate-webhook-worker".to_owned())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, self.run(stopped));
            })?;
        Ok(WorkerHandle {
            stop,
            thread: Some(thread),
        })
    }

    /// Runs until `stop` turns true (or its sender is dropped), then drains. Must run inside a
    /// `tokio::task::LocalSet`, as [`Worker::spawn`] does.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let requests = match Requests::new(&self.data).await {
            Ok(requests) => Rc::new(requests),
            Err(error) => {
                tracing::error!(error, "replicate webhook inbox worker could not start");
                return;
            }
        };
        let worker = Rc::new(self);
        let modules: Vec<String> = worker.modules.keys().cloned().collect();
        tracing::info!(
            inbox = worker.inbox.name(),
            modules = modules.join(", "),
            "replicate webhook inbox worker started"
        );
        let loops: Vec<_> = modules
            .into_iter()
            .map(|key| {
                let module_loop = worker
                    .clone()
                    .module_loop(key, requests.clone(), stop.clone());
                tokio::task::spawn_local(module_loop)
            })
            .collect();
        if let Some(every) = worker.options.metrics_every {
            tokio::task::spawn_local(worker.clone().publish_metrics(every, stop.clone()));
        }
        for handle in loops {
            let _ = handle.await;
        }
        tracing::info!("replicate webhook inbox worker stopped");
    }

    async fn module_loop(
        self: Rc<Self>,
        key: String,
        requests: Rc<Requests>,
        mut stop: watch::Receiver<bool>,
    ) {
        let module = &self.modules[&key];
        let slots = module
            .concurrency
            .unwrap_or(self.options.concurrency)
            .max(1);
        let free = Arc::new(Semaphore::new(slots));
        let mut wake = self.wake.clone();
        let mut store_errors = 0u32;
        while !*stop.borrow() {
            let available = free.available_permits();
            if available == 0 {
                tokio::select! {
                    permit = free.acquire() => drop(permit),
                    _ = stop.changed() => {}
                }
                continue;
            }
            let hold = Hold {
                token: ClaimToken::new().as_str().to_owned(),
                visibility: self.options.visibility,
            };
            match self.inbox.queue.take(&key, &hold, available).await {
                Ok(jobs) if !jobs.is_empty() => {
                    store_errors = 0;
                    for job in jobs {
                        let Ok(permit) = free.clone().acquire_owned().await else {
                            break;
                        };
                        let (worker, requests) = (self.clone(), requests.clone());
                        let hold = hold.clone();
                        tokio::task::spawn_local(async move {
                            worker.run_job(job, &hold, &requests).await;
                            drop(permit);
                        });
                    }
                    continue;
                }
                Ok(_) => store_errors = 0,
                Err(e) => {
                    store_errors += 1;
                    if store_errors == 1 || store_errors.is_multiple_of(100) {
                        tracing::warn!(error = %e, module = key, "inbox unavailable; retrying");
                    }
                }
            }
            let changed = async {
                if let Some(w) = wake.as_mut()
                    && w.changed().await.is_ok()
                {
                    return;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(self.options.poll) => {}
                _ = stop.changed() => {}
            }
        }
        // Draining: every slot back means every running handler finished.
        let drained = tokio::time::timeout(
            self.options.shutdown_deadline,
            free.acquire_many(u32::try_from(slots).unwrap_or(u32::MAX)),
        )
        .await;
        if drained.is_err() {
            tracing::warn!(
                module = key,
                "handlers still running at the shutdown deadline; their jobs run again after \
                 the visibility timeout"
            );
        }
    }

    async fn publish_metrics(self: Rc<Self>, every: Duration, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.inbox.backlog().await {
                Ok(backlog) => super::metrics::publish(&backlog),
                Err(e) => tracing::debug!(error = %e, "inbox backlog unavailable"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn run_job(&self, job: Job, hold: &Hold, requests: &Requests) {
        // Named and shaped as the delivery's span, whose trace it continues (see `otel`).
        let event = HandlerKind::from_fn_name(&job.handler).and_then(HandlerKind::event);
        let span = tracing::info_span!(
            "inbox_job",
            job = job.id,
            prediction = job.prediction_id,
            model = job.model,
            status = job.status,
            event = event.map(crate::Event::as_str),
            handler = job.handler,
            attempt = job.attempts,
            outcome = tracing::field::Empty,
        );
        #[cfg(feature = "otel")]
        crate::otel::continue_stored_trace(&span, &job.headers);
        self.run_job_inner(job, hold, requests)
            .instrument(span)
            .await;
    }

    async fn run_job_inner(&self, job: Job, hold: &Hold, requests: &Requests) {
        let started = Instant::now();
        let module = self.modules.get(&job.module);
        let kind = HandlerKind::from_fn_name(&job.handler)
            .filter(|kind| module.is_some_and(|m| m.handler(*kind).is_some()));
        let (Some(module), Some(kind)) = (module, kind) else {
            // A job stored by another version of the application, for a module or handler
            // this binary does not have: keep it for `replay` once one that has it runs.
            let error = format!(
                "no handler `{}` in module `{}` in this worker",
                job.handler, job.module
            );
            self.settle(&job, hold, Settle::Dead { error }, "unknown", started)
                .await;
            return;
        };
        let outcome = match self.call(&job, requests).await {
            Ok(call) => {
                let handler = module.run(kind, call, self.options.handler_timeout);
                tokio::pin!(handler);
                let heartbeat = self.heartbeat(&job, hold);
                tokio::pin!(heartbeat);
                tokio::select! {
                    outcome = &mut handler => outcome,
                    () = &mut heartbeat => {
                        tracing::Span::current().record("outcome", "lost");
                        tracing::warn!("job hold lost to another worker; this run stops");
                        super::metrics::run(kind.fn_name(), "lost", started.elapsed());
                        return;
                    }
                }
            }
            Err(error) => Outcome::Failed(HandlerError::retry(error)),
        };
        let error = match outcome.verdict(kind.fn_name(), &job.prediction_id) {
            Verdict::Done(_) => {
                self.settle(&job, hold, Settle::Done(self.ttls), kind.fn_name(), started)
                    .await;
                return;
            }
            Verdict::GiveUp(error) => {
                self.die(&job, hold, module, (kind, requests), error, started)
                    .await;
                return;
            }
            Verdict::Retry { error, .. } => error,
        };
        let delay = self
            .options
            .backoff
            .jittered(job.attempts.saturating_sub(1));
        let budget_end = job
            .budget_from_ms
            .saturating_add(crate::dedupe::millis(self.options.max_age));
        let next_run = now_ms().saturating_add(crate::dedupe::millis(delay));
        if job.attempts >= self.options.max_attempts || next_run > budget_end {
            tracing::error!(
                error,
                attempts = job.attempts,
                "handler failed; out of retries, job is dead"
            );
            self.die(&job, hold, module, (kind, requests), error, started)
                .await;
        } else {
            tracing::warn!(
                error,
                retry_in_ms = delay.as_millis(),
                "handler failed; will retry"
            );
            let retry = Settle::Retry { delay, error };
            self.settle(&job, hold, retry, kind.fn_name(), started)
                .await;
        }
    }

    /// Moves the job to `dead`, then runs the module's `on_dead` hook.
    async fn die(
        &self,
        job: &Job,
        hold: &Hold,
        module: &Module,
        (kind, requests): (HandlerKind, &Requests),
        error: String,
        started: Instant,
    ) {
        let dead = Settle::Dead {
            error: error.clone(),
        };
        let settled = self.settle(job, hold, dead, kind.fn_name(), started).await;
        if !settled || module.handler(HandlerKind::Dead).is_none() {
            return;
        }
        let letter = DeadLetter {
            job: job.id,
            handler: kind.fn_name(),
            attempts: job.attempts,
            error,
            body: Bytes::from(job.body.clone()),
        };
        let call = match self.call(job, requests).await {
            Ok(call) => call.with_dead_letter(letter),
            Err(error) => {
                tracing::error!(prediction = job.prediction_id, error, "on_dead not run");
                return;
            }
        };
        let outcome = module
            .run(HandlerKind::Dead, call, self.options.handler_timeout)
            .await;
        if !matches!(outcome, Outcome::Done) {
            tracing::error!(prediction = job.prediction_id, outcome = ?outcome, "on_dead failed");
        }
    }

    /// Records a job's end; retried briefly, since a lost answer leaves the job to run again
    /// after its visibility timeout. `true` when recorded.
    async fn settle(
        &self,
        job: &Job,
        hold: &Hold,
        settle: Settle,
        handler: &'static str,
        started: Instant,
    ) -> bool {
        let result = match settle {
            Settle::Done(_) => "done",
            Settle::Retry { .. } => "retry",
            Settle::Dead { .. } => "dead",
        };
        tracing::Span::current().record("outcome", result);
        for attempt in 0..5u32 {
            match self.inbox.queue.settle(job, hold, settle.clone()).await {
                Ok(true) => {
                    super::metrics::run(handler, result, started.elapsed());
                    return true;
                }
                Ok(false) => {
                    tracing::warn!("job was taken over by another worker before it settled");
                    super::metrics::run(handler, "lost", started.elapsed());
                    return false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "could not record the job's result");
                    tokio::time::sleep(SETTLE_RETRY.delay(attempt)).await;
                }
            }
        }
        tracing::error!("job result not recorded; it runs again after the visibility timeout");
        false
    }

    /// Extends the job's visibility while the handler runs; returns only if the hold is lost.
    async fn heartbeat(&self, job: &Job, hold: &Hold) {
        let every = self.options.heartbeat_every();
        loop {
            tokio::time::sleep(every).await;
            match self.inbox.queue.heartbeat(job.id, hold).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
            }
        }
    }

    /// The job's call: its request rebuilt (see [`Requests`]) and its body.
    async fn call(&self, job: &Job, requests: &Requests) -> Result<Call, String> {
        let req = requests
            .of(job)
            .await
            .map_err(|e| format!("the job's request could not be rebuilt: {e}"))?;
        Ok(Call::new(req, Bytes::from(job.body.clone())))
    }
}
