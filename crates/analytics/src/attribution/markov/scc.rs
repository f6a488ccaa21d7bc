//! Strongly connected components of the chain, sinks first (Tarjan, iterative so deep chains
//! cannot overflow the stack). Solving blocks in this order makes every value a block reads
//! from outside itself already final.

use super::chain::Chain;

/// The components, each a list of states, in reverse topological order (a component only
/// moves to components listed before it). Absorbing states are left out.
pub(crate) fn components_sinks_first(chain: &Chain) -> Vec<Vec<u32>> {
    let n = chain.state_count();
    const UNVISITED: u32 = u32::MAX;
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut calls: Vec<(u32, usize)> = Vec::new();
    let mut components = Vec::new();
    let mut counter = 0u32;
    for root in 0..n as u32 {
        if index[root as usize] != UNVISITED || chain.row(root as usize).is_empty() {
            continue;
        }
        calls.push((root, chain.row(root as usize).start));
        index[root as usize] = counter;
        low[root as usize] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        while let Some(&mut (v, ref mut next_edge)) = calls.last_mut() {
            let row_end = chain.row(v as usize).end;
            if *next_edge < row_end {
                let w = chain.targets[*next_edge];
                *next_edge += 1;
                if chain.row(w as usize).is_empty() {
                    continue;
                }
                if index[w as usize] == UNVISITED {
                    index[w as usize] = counter;
                    low[w as usize] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w as usize] = true;
                    calls.push((w, chain.row(w as usize).start));
                } else if on_stack[w as usize] {
                    low[v as usize] = low[v as usize].min(index[w as usize]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent as usize] = low[parent as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w as usize] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}
