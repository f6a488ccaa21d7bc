//! Dense linear systems, solved by Gaussian elimination with partial pivoting: the Markov
//! chain's small transient blocks (three right-hand sides: conversion, null, value) and the
//! uplift game's Newton steps (one).

/// Solves `matrix · x = rhs` in place for `K` right-hand sides at once (`matrix` is `m × m`,
/// row-major); the solutions are left in `rhs`. Returns whether every pivot was non-zero: a
/// zero pivot (a singular matrix) is skipped, and the rows it leads are left undivided.
pub(super) fn eliminate<const K: usize>(
    matrix: &mut [f64],
    rhs: &mut [[f64; K]],
    m: usize,
) -> bool {
    let mut regular = true;
    for col in 0..m {
        let pivot = (col..m)
            .max_by(|&a, &b| {
                matrix[a * m + col]
                    .abs()
                    .total_cmp(&matrix[b * m + col].abs())
            })
            .unwrap_or(col);
        if pivot != col {
            for k in 0..m {
                matrix.swap(col * m + k, pivot * m + k);
            }
            rhs.swap(col, pivot);
        }
        let diagonal = matrix[col * m + col];
        if diagonal == 0.0 {
            regular = false;
            continue;
        }
        for row in col + 1..m {
            let factor = matrix[row * m + col] / diagonal;
            if factor == 0.0 {
                continue;
            }
            for k in col..m {
                matrix[row * m + k] -= factor * matrix[col * m + k];
            }
            let pivot_rhs = rhs[col];
            for (r, p) in rhs[row].iter_mut().zip(pivot_rhs) {
                *r -= factor * p;
            }
        }
    }
    for col in (0..m).rev() {
        let diagonal = matrix[col * m + col];
        let mut solution = rhs[col];
        for k in col + 1..m {
            let a = matrix[col * m + k];
            for (s, known) in solution.iter_mut().zip(rhs[k]) {
                *s -= a * known;
            }
        }
        if diagonal != 0.0 {
            solution.iter_mut().for_each(|s| *s /= diagonal);
        }
        rhs[col] = solution;
    }
    regular
}

#[cfg(test)]
mod tests {
    use super::eliminate;

    #[test]
    fn solves_a_system_that_needs_a_row_swap() {
        // The first pivot is zero until rows are swapped.
        let mut matrix = vec![0.0, 2.0, 1.0, 3.0, 1.0, 0.0, 1.0, 1.0, 1.0];
        let want = [1.0, -2.0, 3.0];
        let mut rhs: Vec<[f64; 2]> = [[-1.0, 1.0], [1.0, 1.0], [2.0, 1.0]].to_vec();
        // Column 0: x = (1, −2, 3); column 1: whatever solves it, checked by substitution.
        let original = matrix.clone();
        let columns = rhs.clone();
        assert!(eliminate(&mut matrix, &mut rhs, 3));
        for (got, w) in rhs.iter().zip(want) {
            assert!((got[0] - w).abs() < 1e-12, "{rhs:?}");
        }
        for (row, expected) in columns.iter().enumerate() {
            let lhs: f64 = (0..3).map(|k| original[row * 3 + k] * rhs[k][1]).sum();
            assert!((lhs - expected[1]).abs() < 1e-12);
        }
    }

    #[test]
    fn a_singular_matrix_is_reported() {
        let mut matrix = vec![1.0, 2.0, 2.0, 4.0];
        let mut rhs = vec![[1.0], [2.0]];
        assert!(!eliminate(&mut matrix, &mut rhs, 2));
    }
}
