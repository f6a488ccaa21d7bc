//! Folding persons in contiguous partitions on scoped threads and merging the accumulators.
//!
//! Every journey model keeps per-partition accumulators with a `merge`; [`run_partitioned`] is
//! the one place that splits the persons, runs the partitions side by side and merges them in
//! partition order, and [`on_threads`] the one place that runs parts on scoped threads and
//! joins them in part order, so results never depend on which thread finished first.

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
