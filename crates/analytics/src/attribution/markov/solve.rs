//! The exact absorbing-chain solve: for every transient state s, x_s = P(conversion | s),
//! y_s = P(null | s) and v_s = expected conversion value from s, each satisfying
//! `u_s = Σ_t p_st u_t + reward_s`.
//!
//! Components are solved sinks first, so a block only reads final values from outside itself.
//! Blocks of up to [`DENSE_LIMIT`] live states are solved directly (Gaussian elimination with
//! partial pivoting on `I − Q`, an M-matrix, so pivoting is benign). Larger blocks use
//! Gauss–Seidel started from zero: every sweep is monotone and stays below the solution, so x
//! and y are lower bounds, and since absorption is certain (x* + y* = 1) the true conversion
//! probability lies in `[x_s, 1 − y_s]`. Iteration stops when that proven bracket is narrower
//! than [`BRACKET_TOLERANCE`] for every state of the block (or a sweep changes nothing at all:
//! the floating-point fixed point). A block that would need too many sweeps falls back to the
//! direct solve.

use super::chain::{CONVERSION, Chain, NULL, START};
use crate::attribution::credits::AttributionError;
use crate::attribution::dense::eliminate;

/// Largest block solved directly. Tests lower it so the random chains of the property tests
/// exercise both the direct and the iterative block solve.
const DENSE_LIMIT: usize = if cfg!(test) { 6 } else { 200 };
/// Largest block the direct solve takes when Gauss–Seidel converges too slowly.
const DENSE_FALLBACK_LIMIT: usize = 4000;
/// Width of the proven bracket on every conversion probability at which iteration stops.
pub(crate) const BRACKET_TOLERANCE: f64 = 1e-14;
/// Sweeps before falling back to the direct solve.
const MAX_SWEEPS: usize = 20_000;
const NOT_LOCAL: u32 = u32::MAX;

/// What the start state absorbs into.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Absorption {
    /// P(conversion) from `(start)`.
    pub(crate) conversion: f64,
    /// Expected conversion value per journey from `(start)`.
    pub(crate) value: f64,
}

/// Buffers reused across solves (one per thread).
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    x: Vec<f64>,
    y: Vec<f64>,
    v: Vec<f64>,
    live: Vec<u32>,
    local: Vec<u32>,
    matrix: Vec<f64>,
    rhs: Vec<[f64; 3]>,
}

/// Solves the chain with the `dead` states (those containing a removed channel) sending
/// everything to null; `components` must come from `components_sinks_first`.
pub(crate) fn solve(
    chain: &Chain,
    components: &[Vec<u32>],
    dead: &[bool],
    ws: &mut Workspace,
) -> Result<Absorption, AttributionError> {
    let n = chain.state_count();
    for buffer in [&mut ws.x, &mut ws.y, &mut ws.v] {
        buffer.clear();
        buffer.resize(n, 0.0);
    }
    ws.local.clear();
    ws.local.resize(n, NOT_LOCAL);
    ws.x[CONVERSION as usize] = 1.0;
    ws.y[NULL as usize] = 1.0;
    for (s, _) in dead.iter().enumerate().filter(|(_, d)| **d) {
        ws.y[s] = 1.0;
    }
    for component in components {
        ws.live.clear();
        ws.live
            .extend(component.iter().filter(|&&s| !dead[s as usize]));
        match ws.live.len() {
            0 => {}
            1 => {
                let s = ws.live[0] as usize;
                let (x, y, v) = ws.update(chain, s);
                (ws.x[s], ws.y[s], ws.v[s]) = (x, y, v);
            }
            len if len <= DENSE_LIMIT => ws.dense(chain),
            _ => ws.gauss_seidel(chain)?,
        }
    }
    Ok(Absorption {
        conversion: ws.x[START as usize],
        value: ws.v[START as usize],
    })
}

impl Workspace {
    /// One state's new values from the current values of its targets.
    #[inline]
    fn update(&self, chain: &Chain, s: usize) -> (f64, f64, f64) {
        let (mut x, mut y, mut v) = (0.0, 0.0, chain.value_reward[s]);
        for e in chain.row(s) {
            let t = chain.targets[e] as usize;
            let p = chain.probabilities[e];
            x += p * self.x[t];
            y += p * self.y[t];
            v += p * self.v[t];
        }
        (x, y, v)
    }

    fn gauss_seidel(&mut self, chain: &Chain) -> Result<(), AttributionError> {
        let mut gap = f64::INFINITY;
        for _ in 0..MAX_SWEEPS {
            let mut changed = false;
            for i in 0..self.live.len() {
                let s = self.live[i] as usize;
                let (x, y, v) = self.update(chain, s);
                changed |= x != self.x[s] || y != self.y[s] || v != self.v[s];
                (self.x[s], self.y[s], self.v[s]) = (x, y, v);
            }
            gap = self
                .live
                .iter()
                .map(|&s| 1.0 - self.x[s as usize] - self.y[s as usize])
                .fold(0.0, f64::max);
            if gap <= BRACKET_TOLERANCE || !changed {
                return Ok(());
            }
        }
        if self.live.len() <= DENSE_FALLBACK_LIMIT {
            self.dense(chain);
            return Ok(());
        }
        Err(AttributionError::MarkovNotConverged {
            states: self.live.len(),
            gap,
        })
    }

    /// Direct solve of `(I − Q) u = b` over the live block for the three right-hand sides.
    fn dense(&mut self, chain: &Chain) {
        let m = self.live.len();
        for (i, &s) in self.live.iter().enumerate() {
            self.local[s as usize] = i as u32;
        }
        self.matrix.clear();
        self.matrix.resize(m * m, 0.0);
        self.rhs.clear();
        self.rhs.resize(m, [0.0; 3]);
        for (i, &s) in self.live.iter().enumerate() {
            let s = s as usize;
            self.matrix[i * m + i] = 1.0;
            self.rhs[i][2] = chain.value_reward[s];
            for e in chain.row(s) {
                let t = chain.targets[e] as usize;
                let p = chain.probabilities[e];
                match self.local[t] {
                    NOT_LOCAL => {
                        self.rhs[i][0] += p * self.x[t];
                        self.rhs[i][1] += p * self.y[t];
                        self.rhs[i][2] += p * self.v[t];
                    }
                    j => self.matrix[i * m + j as usize] -= p,
                }
            }
        }
        // `I − Q` of a transient block is non-singular, so every pivot is non-zero for chains
        // built from paths.
        eliminate(&mut self.matrix, &mut self.rhs, m);
        for (i, &s) in self.live.iter().enumerate() {
            let s = s as usize;
            [self.x[s], self.y[s], self.v[s]] = self.rhs[i];
            self.local[s] = NOT_LOCAL;
        }
    }
}
