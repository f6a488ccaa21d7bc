//! Spreading partitions over scoped threads.
//!
//! Partitions are assigned to workers statically (worker `w` takes partitions `w`,
//! `w + workers`, …) and results come back in worker order, so a query's result never
//! depends on which thread finished first. Hash partitioning keeps partitions within a few
//! percent of each other in size, which is what makes the static assignment balanced.

use std::thread;

/// Folds partitions `0..parts` into one state per worker; states come back in worker order.
/// The first error of any worker is returned.
pub(crate) fn fold_parts<A, E>(
    parts: usize,
    threads: usize,
    make: impl Fn() -> A + Sync,
    visit: impl Fn(&mut A, usize) -> Result<(), E> + Sync,
) -> Result<Vec<A>, E>
where
    A: Send,
    E: Send,
{
    let workers = threads.clamp(1, parts.max(1));
    let run = |worker: usize| -> Result<A, E> {
        let mut state = make();
        for part in (worker..parts).step_by(workers) {
            visit(&mut state, part)?;
        }
        Ok(state)
    };
    if workers == 1 {
        return run(0).map(|state| vec![state]);
    }
    let results = touchline_analytics::calendar::on_threads(0..workers, run);
    results.into_iter().collect()
}

/// Runs `work` on every item, the items split into `threads` contiguous runs.
pub(crate) fn each_mut<T: Send>(items: &mut [T], threads: usize, work: impl Fn(&mut T) + Sync) {
    let workers = threads.clamp(1, items.len().max(1));
    if workers == 1 {
        items.iter_mut().for_each(work);
        return;
    }
    let per = items.len().div_ceil(workers);
    let work = &work;
    thread::scope(|scope| {
        for run in items.chunks_mut(per) {
            scope.spawn(move || run.iter_mut().for_each(work));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_visited_once_and_states_come_in_worker_order() {
        let states = fold_parts(10, 3, Vec::new, |seen: &mut Vec<usize>, part| {
            seen.push(part);
            Ok::<(), ()>(())
        });
        assert_eq!(
            states,
            Ok(vec![vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]])
        );
    }

    #[test]
    fn the_first_error_is_returned() {
        let result = fold_parts(
            4,
            2,
            || (),
            |_, part| if part == 3 { Err(part) } else { Ok(()) },
        );
        assert_eq!(result, Err(3));
    }

    #[test]
    fn each_mut_touches_every_item() {
        let mut items = vec![1, 2, 3, 4, 5];
        each_mut(&mut items, 2, |item| *item *= 10);
        assert_eq!(items, [10, 20, 30, 40, 50]);
    }
}
