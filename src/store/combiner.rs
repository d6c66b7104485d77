//! Write combining for hot paths. Under load, many requests each wanting a small transaction
//! cost far more than one transaction doing all of their work: sled's per-transaction overhead
//! dominates (measured here: 32,000 single-heartbeat transactions/s against 88,000 heartbeats/s
//! when 8 share a transaction). A combiner takes every request queued so far, applies them in
//! one transaction in arrival order, flushes, and answers each. Requests arriving meanwhile
//! form the next batch, so the batch grows with the load.

use std::panic::AssertUnwindSafe;

use tokio::sync::{mpsc, oneshot};

use super::{Deferral, Store, Tx, TxResult};
use crate::error::{Error, Result};

type Reply<Out> = oneshot::Sender<Result<Out>>;

pub struct Combiner<In, Out> {
    queue: mpsc::UnboundedSender<(In, Reply<Out>)>,
}

impl<In, Out> Clone for Combiner<In, Out> {
    fn clone(&self) -> Self {
        Combiner {
            queue: self.queue.clone(),
        }
    }
}

impl<In, Out> Combiner<In, Out>
where
    In: Send + 'static,
    Out: Clone + Send + 'static,
{
    /// `apply` gets every request of a batch, in arrival order, inside the shared transaction,
    /// and returns one output per request. It must not abort for one request's sake (that
    /// would fail the whole batch): validate before submitting.
    pub fn start<F>(store: Store, max_batch: usize, apply: F) -> Combiner<In, Out>
    where
        F: Fn(&Tx, &[In]) -> TxResult<Vec<Out>> + Send + Sync + 'static,
    {
        Self::start_deferring(store, max_batch, |_: &[In]| Ok(None), apply)
    }

    /// As `start`, but each batch is first offered to `defer`, which may answer it with
    /// deferred writes (`Store::defer`: a journal append and one `fdatasync`, no transaction);
    /// `None` sends the batch through `apply` as usual.
    pub fn start_deferring<D, F>(
        store: Store,
        max_batch: usize,
        defer: D,
        apply: F,
    ) -> Combiner<In, Out>
    where
        D: Fn(&[In]) -> Result<Option<(Vec<Out>, Deferral)>> + Send + Sync + 'static,
        F: Fn(&Tx, &[In]) -> TxResult<Vec<Out>> + Send + Sync + 'static,
    {
        let (queue, mut pending) = mpsc::unbounded_channel::<(In, Reply<Out>)>();
        // A thread of its own: the batch's work and its sync are blocking, and a hop to
        // tokio's blocking pool and back per batch cost two more context switches (measured
        // in BENCHMARKS.md). It ends when every `Combiner` handle is gone.
        let work = move |inputs: &[In]| -> Result<Vec<Out>> {
            let deferred = store.defer(|| match defer(inputs)? {
                Some((outputs, _)) if outputs.len() != inputs.len() => {
                    Err(Error::internal("combiner: one output per input expected"))
                }
                deferred => Ok(deferred),
            })?;
            if let Some(outputs) = deferred {
                store.deferred_durable()?;
                return Ok(outputs);
            }
            let outputs = store.transaction(|tx| apply(tx, inputs))?;
            if outputs.len() != inputs.len() {
                return Err(Error::internal("combiner: one output per input expected"));
            }
            store.flush_now()?;
            Ok(outputs)
        };
        let spawned = std::thread::Builder::new()
            .name("combiner".into())
            .spawn(move || {
                while let Some(first) = pending.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < max_batch {
                        match pending.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let (inputs, replies): (Vec<In>, Vec<Reply<Out>>) = batch.into_iter().unzip();
                    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&inputs)))
                        .unwrap_or_else(|_| Err(Error::internal("combiner: a batch panicked")));
                    match outcome {
                        Ok(outputs) => {
                            for (reply, output) in replies.into_iter().zip(outputs) {
                                let _ = reply.send(Ok(output));
                            }
                        }
                        Err(e) => {
                            // Every request of the batch gets the same answer (a full disk
                            // stays a 503 `storage_full`, not a bare internal error).
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            // No thread: every submit fails with "combiner stopped" (the channel is closed).
            tracing::error!(error = %e, "cannot start a combiner thread");
        }
        Combiner { queue }
    }

    /// Applies `input` in the next shared transaction; resolves once it is durable.
    pub async fn submit(&self, input: In) -> Result<Out> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((input, reply))
            .map_err(|_| Error::internal("combiner stopped"))?;
        answer
            .await
            .map_err(|_| Error::internal("combiner dropped a request"))?
    }
}
