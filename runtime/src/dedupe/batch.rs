//! Concurrent store calls of one kind sent as one: the shared stores' batching.
//!
//! Each call waits in a queue; a drain task takes everything waiting and runs it as one
//! statement (or script), then answers each caller with its own result, only once that
//! statement returned, so a caller is never told of a write before the store holds it. At most
//! `parallel` drain tasks run at once: while they are busy the queue fills, so the busier the
//! store, the larger each batch, and one call alone waits for nobody.
//!
//! A drain task is spawned when a call finds fewer than `parallel` running, and ends when the
//! queue is empty: no task lives longer than the calls it serves, so a store made outside a
//! runtime, or used from several (actix runs one per worker thread), needs nothing started.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::StoreError;

type Answer<T> = oneshot::Sender<Result<T, StoreError>>;

/// What runs one batch: its requests in, one answer per request out, in the same order.
type Run<R, T> = Box<
    dyn Fn(Vec<R>) -> Pin<Box<dyn Future<Output = Result<Vec<T>, StoreError>> + Send>>
        + Send
        + Sync,
>;

/// Batches the calls of one kind to one store.
pub(crate) struct Batcher<R, T> {
    shared: Arc<Shared<R, T>>,
}

impl<R, T> Clone for Batcher<R, T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<R, T> {
    queue: Mutex<Queue<R, T>>,
    run: Run<R, T>,
    parallel: usize,
    max: usize,
}

struct Queue<R, T> {
    waiting: Vec<(R, Answer<T>)>,
    running: usize,
}

impl<R: Send + 'static, T: Send + 'static> Batcher<R, T> {
    /// A batcher running at most `parallel` batches at once, each of at most `max` requests,
    /// through `run`.
    pub(crate) fn new<F>(
        parallel: usize,
        max: usize,
        run: impl Fn(Vec<R>) -> F + Send + Sync + 'static,
    ) -> Self
    where
        F: Future<Output = Result<Vec<T>, StoreError>> + Send + 'static,
    {
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    waiting: Vec::new(),
                    running: 0,
                }),
                run: Box::new(move |requests| Box::pin(run(requests))),
                parallel: parallel.max(1),
                max: max.max(1),
            }),
        }
    }

    /// Queues `request` and waits for its answer.
    ///
    /// The request runs even when this future is dropped: its batch belongs to the drain task.
    pub(crate) async fn call(&self, request: R) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.shared.lock();
            queue.waiting.push((request, answer));
            let start = queue.running < self.shared.parallel;
            if start {
                queue.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(Arc::clone(&self.shared).drain());
        }
        answered
            .await
            .map_err(|_| StoreError::new("the store's batch task ended without answering"))?
    }
}

impl<R, T> Shared<R, T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<R, T>> {
        // The queue is consistent between statements: a panic elsewhere leaves nothing half done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn drain(self: Arc<Self>) {
        let running = Running(&self);
        loop {
            let batch: Vec<_> = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    // Counted out under the lock that saw the queue empty: a call queued after
                    // it finds this task gone and starts another.
                    queue.running -= 1;
                    std::mem::forget(running);
                    return;
                }
                let n = queue.waiting.len().min(self.max);
                queue.waiting.drain(..n).collect()
            };
            let (requests, answers): (Vec<R>, Vec<Answer<T>>) = batch.into_iter().unzip();
            let n = requests.len();
            let results = match (self.run)(requests).await {
                Ok(results) if results.len() != n => Err(StoreError::new(format_args!(
                    "a batch of {n} calls got {} answers",
                    results.len()
                ))),
                results => results,
            };
            match results {
                Ok(results) => {
                    for (answer, result) in answers.into_iter().zip(results) {
                        let _ = answer.send(Ok(result));
                    }
                }
                Err(e) => {
                    for answer in answers {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// Counts a drain task out if it ends early (a panic, or its runtime shutting down), so later
/// calls start another; when none is left running, the callers still waiting are answered with
/// an error rather than left waiting.
struct Running<'a, R, T>(&'a Shared<R, T>);

impl<R, T> Drop for Running<'_, R, T> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.running -= 1;
        if queue.running == 0 {
            queue.waiting.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_batches_and_each_gets_its_own_answer() {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let batcher = Batcher::new(1, 1000, move |requests: Vec<u32>| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(requests.into_iter().map(|r| r * 2).collect())
            }
        });
        let calls: Vec<_> = (0..200)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { (i, batcher.call(i).await) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.expect("task");
            assert_eq!(answer.expect("answer"), i * 2);
        }
        let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
        assert!(runs < 200, "200 concurrent calls ran as {runs} batches");
    }

    #[tokio::test]
    async fn an_error_reaches_every_caller_of_its_batch() {
        let batcher: Batcher<u32, u32> =
            Batcher::new(2, 10, |_| async { Err(StoreError::new("server gone")) });
        let (a, b) = tokio::join!(batcher.call(1), batcher.call(2));
        assert!(a.unwrap_err().to_string().contains("server gone"));
        assert!(b.unwrap_err().to_string().contains("server gone"));
        // The queue is still served after an error.
        assert!(batcher.call(3).await.is_err());
    }
}
