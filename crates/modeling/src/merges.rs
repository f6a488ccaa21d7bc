//! Folds a run of consecutive merges into one plan that a handful of set-based statements can
//! apply: applying merges one by one costs several statements each under the tenant's store
//! lock, and identity emits merges in runs of hundreds, so the event store would wait behind
//! them. The plan reproduces exactly what applying the merges in order would leave behind,
//! including chains (a person merged into A, then A into B, ends at B) and the odd cases
//! (a survivor later merged away, a person merged twice).

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

/// One merge: `merged` absorbed into `survivor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// The person that remains.
    pub survivor: Uuid,
    /// The persons absorbed.
    pub merged: Vec<Uuid>,
}

/// What a run of merges does, as set operations on the state before the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergePlan {
    /// Where each person's history ends up, `(from, to)` with `from != to`: events stored under
    /// `from`, and redirects pointing at `from`, move to `to`.
    pub moves: Vec<(Uuid, Uuid)>,
    /// Redirects each merged person ends with, `(from, to)`, one per `from`.
    pub redirects: Vec<(Uuid, Uuid)>,
    /// Detached identifiers copied, `(source, destination)`: what the destination holds
    /// afterwards is its own plus every source's.
    pub detached_copies: Vec<(Uuid, Uuid)>,
    /// Every person a merge of the run names.
    pub involved: Vec<Uuid>,
    steps: Vec<(Uuid, Vec<Uuid>)>,
}

/// What a run of merges leaves of the involved persons' attribute rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeChanges {
    /// Rows written, with their final opt-out.
    pub upserts: Vec<(Uuid, bool)>,
    /// Rows removed.
    pub deletes: Vec<Uuid>,
}

#[derive(Debug, Clone, Copy)]
enum Token {
    /// The history that started under this person.
    Origin(Uuid),
    /// The redirect a merge gave this person.
    Redirect(Uuid),
}

impl MergePlan {
    /// The plan of applying `merges` in order.
    pub fn new(merges: &[Merge]) -> Self {
        // A person merged into itself, or named twice by one merge, changes nothing more.
        let steps: Vec<(Uuid, Vec<Uuid>)> = merges
            .iter()
            .filter_map(|m| {
                let mut seen = HashSet::new();
                let merged: Vec<Uuid> = m
                    .merged
                    .iter()
                    .copied()
                    .filter(|p| *p != m.survivor && seen.insert(*p))
                    .collect();
                (!merged.is_empty()).then_some((m.survivor, merged))
            })
            .collect();

        let mut involved = Vec::new();
        let mut known = HashSet::new();
        for (survivor, merged) in &steps {
            for person in std::iter::once(survivor).chain(merged) {
                if known.insert(*person) {
                    involved.push(*person);
                }
            }
        }

        // Tokens ride along with the merges: everything at a merged person moves to the
        // survivor, so where a token ends is where the thing it stands for ends.
        let mut tokens: Vec<Token> = involved.iter().map(|p| Token::Origin(*p)).collect();
        let mut at: HashMap<Uuid, Vec<usize>> = involved
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, vec![i]))
            .collect();
        let mut latest_redirect: HashMap<Uuid, usize> = HashMap::new();
        let mut sources: HashMap<Uuid, HashSet<Uuid>> =
            involved.iter().map(|p| (*p, HashSet::from([*p]))).collect();
        for (survivor, merged) in &steps {
            let mut absorbed = HashSet::new();
            for person in merged {
                if let Some(moving) = at.remove(person) {
                    at.entry(*survivor).or_default().extend(moving);
                }
                if let Some(from) = sources.get(person) {
                    absorbed.extend(from.iter().copied());
                }
            }
            sources.entry(*survivor).or_default().extend(absorbed);
            for person in merged {
                latest_redirect.insert(*person, tokens.len());
                at.entry(*survivor).or_default().push(tokens.len());
                tokens.push(Token::Redirect(*person));
            }
        }

        let mut moves = Vec::new();
        let mut redirects = Vec::new();
        for person in &involved {
            let Some(held) = at.get(person) else {
                continue;
            };
            for &token in held {
                match tokens[token] {
                    Token::Origin(from) if from != *person => moves.push((from, *person)),
                    Token::Redirect(from) if latest_redirect.get(&from) == Some(&token) => {
                        redirects.push((from, *person));
                    }
                    Token::Origin(_) | Token::Redirect(_) => {}
                }
            }
        }
        let mut detached_copies = Vec::new();
        for person in &involved {
            if let Some(from) = sources.get(person) {
                let mut from: Vec<Uuid> = from.iter().copied().filter(|p| p != person).collect();
                from.sort_unstable();
                detached_copies.extend(from.into_iter().map(|source| (source, *person)));
            }
        }
        Self {
            moves,
            redirects,
            detached_copies,
            involved,
            steps,
        }
    }

    /// Whether the run changes nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Replays the run over the involved persons' attribute rows (`before`: opt-out of those
    /// with a row): a merged person's row goes, and the survivor gets one whenever a merged
    /// person had one, keeping any opt-out.
    pub fn attributes(&self, before: &HashMap<Uuid, bool>) -> AttributeChanges {
        let mut rows = before.clone();
        let mut written = HashSet::new();
        for (survivor, merged) in &self.steps {
            let mut any_row = false;
            let mut opt_out = false;
            for person in merged {
                if let Some(value) = rows.remove(person) {
                    any_row = true;
                    opt_out |= value;
                }
            }
            if any_row {
                let entry = rows.entry(*survivor).or_insert(false);
                *entry |= opt_out;
                written.insert(*survivor);
            }
        }
        let mut changes = AttributeChanges::default();
        for person in &self.involved {
            match rows.get(person) {
                Some(value) if written.contains(person) => {
                    changes.upserts.push((*person, *value));
                }
                Some(_) => {}
                None if before.contains_key(person) => changes.deletes.push(*person),
                None => {}
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(survivor: Uuid, merged: &[Uuid]) -> Merge {
        Merge {
            survivor,
            merged: merged.to_vec(),
        }
    }

    fn persons<const N: usize>() -> [Uuid; N] {
        std::array::from_fn(|_| Uuid::now_v7())
    }

    fn sorted(mut pairs: Vec<(Uuid, Uuid)>) -> Vec<(Uuid, Uuid)> {
        pairs.sort_unstable();
        pairs
    }

    #[test]
    fn a_chain_ends_at_the_last_survivor() {
        let [a, b, c] = persons();
        let plan = MergePlan::new(&[merge(b, &[a]), merge(c, &[b])]);
        assert_eq!(sorted(plan.moves.clone()), sorted(vec![(a, c), (b, c)]));
        assert_eq!(sorted(plan.redirects.clone()), sorted(vec![(a, c), (b, c)]));
        assert_eq!(
            sorted(plan.detached_copies.clone()),
            sorted(vec![(a, b), (a, c), (b, c)])
        );
    }

    #[test]
    fn merging_back_and_forth_keeps_the_history_together() {
        let [a, b] = persons();
        let plan = MergePlan::new(&[merge(b, &[a]), merge(a, &[b])]);
        assert_eq!(plan.moves, vec![(b, a)]);
        // a's redirect from the first merge is overwritten by nothing, and then retargeted
        // to a itself: exactly what the merges one by one leave.
        assert_eq!(sorted(plan.redirects.clone()), sorted(vec![(a, a), (b, a)]));
    }

    #[test]
    fn self_merges_and_repeats_change_nothing_more() {
        let [a, b] = persons();
        assert!(MergePlan::new(&[merge(a, &[a])]).is_empty());
        let plan = MergePlan::new(&[merge(a, &[b, b, a])]);
        assert_eq!(plan.moves, vec![(b, a)]);
        assert_eq!(plan.redirects, vec![(b, a)]);
    }

    #[test]
    fn attributes_follow_the_survivor_and_keep_an_opt_out() {
        let [a, b, c, d] = persons();
        let plan = MergePlan::new(&[merge(b, &[a]), merge(c, &[b]), merge(c, &[d])]);
        let before = HashMap::from([(a, true), (c, false)]);
        let changes = plan.attributes(&before);
        assert_eq!(changes.upserts, vec![(c, true)]);
        assert_eq!(changes.deletes, vec![a]);
        // Nobody with a row: nothing written.
        assert_eq!(
            plan.attributes(&HashMap::new()),
            AttributeChanges::default()
        );
    }
}
