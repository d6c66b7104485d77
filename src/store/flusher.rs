//! Group commit. Every acknowledged write must be on disk, but one fsync per request is slow
//! and sled 0.34's `flush_async` deadlocks when many tasks await it at once (docs/PITFALLS.md).
//! So one task owns flushing: requests queue a waiter, the task takes every waiter queued so
//! far, runs one blocking `flush()` and answers them all. Waiters that arrive during a flush
//! share the next one.
//!
//! The task holds no database between flushes (each waiter brings the handle to flush), so
//! the store closes the moment its last handle is dropped, not whenever this task notices.

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

type Waiter = (sled::Db, oneshot::Sender<Result<(), String>>);

#[derive(Clone)]
pub struct Flusher {
    waiters: mpsc::UnboundedSender<Waiter>,
}

impl Flusher {
    /// Starts the flushing task on the current tokio runtime.
    pub fn start() -> Flusher {
        let (waiters, mut queue) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = queue.try_recv() {
                    batch.push(more);
                }
                let (handles, waiters): (Vec<sled::Db>, Vec<_>) = batch.into_iter().unzip();
                let db = handles[0].clone();
                let outcome = match tokio::task::spawn_blocking(move || db.flush()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("flush: {e}")),
                    Err(e) => Err(format!("flush task: {e}")),
                };
                // Before answering: a waiter may close the store at once, and the database
                // closes only once no handle is left here.
                drop(handles);
                for waiter in waiters {
                    let _ = waiter.send(outcome.clone());
                }
            }
        });
        Flusher { waiters }
    }

    /// Resolves once everything written before the call is on disk.
    pub async fn flushed(&self, db: &sled::Db) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .send((db.clone(), tx))
            .map_err(|_| Error::internal("flusher stopped"))?;
        rx.await
            .map_err(|_| Error::internal("flusher dropped a waiter"))?
            .map_err(Error::internal)
    }
}
