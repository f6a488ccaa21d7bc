//! Folding persons in contiguous partitions on scoped threads and merging the accumulators.
//!
//! Every journey model keeps per-partition accumulators with a `merge`; this helper is the
//! one place that splits the persons, runs the partitions side by side and merges them in
//! partition order, so results never depend on which thread finished first.

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
    let partials: Vec<Result<A, E>> = thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk_len)
            .map(|chunk| scope.spawn(|| fold_chunk(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(result) => result,
                // A panicking fold is a bug in this crate, not an input problem: carry it on.
                Err(payload) => std::panic::resume_unwind(payload),
            })
            .collect()
    });
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
