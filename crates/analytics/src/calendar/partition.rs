//! Folding persons in contiguous partitions on scoped threads and merging the accumulators.
//!
//! Every journey model keeps per-partition accumulators with a `merge`; [`run_partitioned`] is
//! the one place that splits the persons, runs the partitions side by side and merges them in
//! partition order, and [`on_threads`] the one place that runs parts on scoped threads and
//! joins them in part order, so results never depend on which thread finished first.
//! [`on_threads_in_order`] is its streaming form, for a caller that folds parts in order while
//! later ones are still being made (the paths-text parser).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

/// Folds `items` into accumulators, `threads` partitions at a time, and merges them.
///
/// `make` creates an empty accumulator per partition, `fold` adds one item, `merge` adds a
/// finished partition into the running total (always in partition order). With one thread
/// (or few items) everything runs on the calling thread. The first error of any partition
/// is returned.
pub fn run_partitioned<T, A, E>(
    items: &[T],
    threads: usize,
    make: impl Fn() -> A + Sync,
    fold: impl Fn(&mut A, &T) -> Result<(), E> + Sync,
    merge: impl Fn(&mut A, A),
) -> Result<A, E>
where
    T: Sync,
    A: Send,
    E: Send,
{
    let threads = threads.clamp(1, items.len().max(1));
    let fold_chunk = |chunk: &[T]| -> Result<A, E> {
        let mut accumulator = make();
        for item in chunk {
            fold(&mut accumulator, item)?;
        }
        Ok(accumulator)
    };
    if threads == 1 {
        return fold_chunk(items);
    }
    let chunk_len = items.len().div_ceil(threads);
    let partials = on_threads(items.chunks(chunk_len), fold_chunk);
    let mut partials = partials.into_iter();
    let mut total = match partials.next() {
        Some(first) => first?,
        None => make(),
    };
    for partial in partials {
        merge(&mut total, partial?);
    }
    Ok(total)
}

/// Like [`run_partitioned`] for folds that cannot fail.
pub(crate) fn run_partitioned_infallible<T, A>(
    items: &[T],
    threads: usize,
    make: impl Fn() -> A + Sync,
    fold: impl Fn(&mut A, &T) + Sync,
    merge: impl Fn(&mut A, A),
) -> A
where
    T: Sync,
    A: Send,
{
    let folded = run_partitioned(
        items,
        threads,
        make,
        |accumulator, item| {
            fold(accumulator, item);
            Ok::<(), std::convert::Infallible>(())
        },
        merge,
    );
    match folded {
        Ok(accumulator) => accumulator,
        Err(never) => match never {},
    }
}

/// Runs `work` on every part, each on its own scoped thread, and returns the results in part
/// order (never in the order the threads finish).
///
/// A panicking worker is a bug, not an input problem: the panic is carried on to the caller.
/// The one scoped-thread runner of the analytics models and the projection that feeds them.
pub fn on_threads<P, R>(parts: impl IntoIterator<Item = P>, work: impl Fn(P) -> R + Sync) -> Vec<R>
where
    P: Send,
    R: Send,
{
    let work = &work;
    thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(result) => result,
                Err(payload) => std::panic::resume_unwind(payload),
            })
            .collect()
    })
}

/// Makes parts `0..count` with `make` on `threads` threads (the calling one included) and
/// hands each to `take` on the calling thread, in part order, as soon as it and every part
/// before it are made: the caller folds the first parts while later ones are still being made,
/// instead of waiting for all of them. Idle, the calling thread makes a part itself.
///
/// A panicking worker is a bug, not an input problem: the panic is carried on to the caller.
pub fn on_threads_in_order<P: Send>(
    count: usize,
    threads: usize,
    make: impl Fn(usize) -> P + Sync,
    mut take: impl FnMut(P),
) {
    let next = AtomicUsize::new(0);
    let claim = || {
        let part = next.fetch_add(1, Ordering::Relaxed);
        (part < count).then_some(part)
    };
    let make = &make;
    let (sender, receiver) = mpsc::channel();
    thread::scope(|scope| {
        for _ in 1..threads.min(count) {
            let sender = sender.clone();
            scope.spawn(move || {
                while let Some(part) = claim() {
                    if sender.send((part, make(part))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut made: Vec<Option<P>> = (0..count).map(|_| None).collect();
        let mut due = 0;
        while due < count {
            if let Some(part) = made[due].take() {
                take(part);
                due += 1;
            } else if let Ok((index, part)) = receiver.try_recv() {
                made[index] = Some(part);
            } else if let Some(index) = claim() {
                made[index] = Some(make(index));
            } else if let Ok((index, part)) = receiver.recv() {
                made[index] = Some(part);
            } else {
                // Every worker is gone with parts missing: one panicked, and the scope carries
                // its panic on when it ends.
                break;
            }
        }
    });
}
