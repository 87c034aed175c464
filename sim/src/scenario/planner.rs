//! The generic expert: heuristic search over the grounded state space of any scenario.
//!
//! Weighted A* (f = g + 2·h) with the additive relaxed-plan heuristic h_add (delete relaxation,
//! cost of a fact = cheapest way to reach it ignoring deletions). States where the episode would
//! end as a failure (`ends_when` without the goal) are not expanded. Nothing here knows any
//! particular scenario: it only reads the ground actions and the goal.

use super::instance::{Instance, dnf_holds};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Search limits.
#[derive(Debug, Clone, Copy)]
pub struct PlannerLimits {
    /// Maximum number of expanded states.
    pub max_expansions: usize,
    /// Maximum plan length.
    pub max_depth: u32,
}

impl Default for PlannerLimits {
    fn default() -> Self {
        Self {
            max_expansions: 200_000,
            max_depth: 200,
        }
    }
}

/// h_add of `state` to the goal; `None` when the goal is unreachable even under relaxation.
pub fn h_add(inst: &Instance, state: &[u64], cost: &mut Vec<u32>) -> Option<u32> {
    const INF: u32 = u32::MAX / 4;
    cost.clear();
    cost.resize(inst.num_facts(), INF);
    for (i, c) in cost.iter_mut().enumerate() {
        if state[i >> 6] >> (i & 63) & 1 == 1 {
            *c = 0;
        }
    }
    let goal_cost = |cost: &[u32]| {
        inst.goal
            .iter()
            .map(|c| {
                c.pos
                    .iter()
                    .map(|&f| cost[f as usize])
                    .fold(0u32, |a, b| a.saturating_add(b))
            })
            .min()
            .unwrap_or(INF)
    };
    loop {
        let mut changed = false;
        for (a, _) in inst
            .actions()
            .iter()
            .zip(&inst.action_on)
            .filter(|(_, on)| **on)
        {
            let mut pc = 1u32;
            for &f in &a.pre.pos {
                pc = pc.saturating_add(cost[f as usize]);
                if pc >= INF {
                    break;
                }
            }
            if pc >= INF {
                continue;
            }
            let lower = |cost: &mut [u32], adds: &[u32], c: u32| {
                let mut lowered = false;
                for &f in adds {
                    if c < cost[f as usize] {
                        cost[f as usize] = c;
                        lowered = true;
                    }
                }
                lowered
            };
            changed |= lower(cost, &a.add, pc);
            // a conditional effect: the action, plus the cheapest way to make its condition true
            for c in &a.when {
                let cc = c
                    .when
                    .iter()
                    .map(|w| {
                        w.pos
                            .iter()
                            .fold(pc, |s, &f| s.saturating_add(cost[f as usize]))
                    })
                    .min()
                    .unwrap_or(INF);
                if cc < INF {
                    changed |= lower(cost, &c.add, cc);
                }
            }
        }
        if !changed {
            break;
        }
    }
    let g = goal_cost(cost);
    (g < INF).then_some(g)
}

/// A plan (ground action indices) from `start` to a goal state, or `None` if none was found
/// within the limits.
pub fn plan(inst: &Instance, start: &[u64], limits: PlannerLimits) -> Option<Vec<u32>> {
    if inst.is_goal(start) {
        return Some(vec![]);
    }
    let mut scratch = vec![];
    let h0 = h_add(inst, start, &mut scratch)?;
    // node storage: state, parent, action, depth
    let mut states: Vec<Vec<u64>> = vec![start.to_vec()];
    let mut parent: Vec<(u32, u32, u32)> = vec![(u32::MAX, u32::MAX, 0)];
    let mut seen: HashMap<Vec<u64>, u32> = HashMap::new();
    seen.insert(start.to_vec(), 0);
    let mut open = BinaryHeap::new();
    open.push(Reverse((2 * h0, h0, 0u32)));
    let mut applicable = vec![];
    let mut expansions = 0;
    while let Some(Reverse((_, _, node))) = open.pop() {
        expansions += 1;
        if expansions > limits.max_expansions {
            return None;
        }
        let depth = parent[node as usize].2;
        if depth >= limits.max_depth {
            continue;
        }
        let state = states[node as usize].clone();
        inst.applicable(&state, &mut applicable);
        let mut last_text: Option<&str> = None;
        for &a in &applicable {
            // several ground actions can share a text; the engine runs the first applicable one
            let text = inst.actions()[a as usize].text.as_str();
            if last_text == Some(text) || inst.resolve(text, &state) != Some(a) {
                continue;
            }
            last_text = Some(text);
            let mut next = state.clone();
            inst.apply(a, &mut next);
            if seen.contains_key(&next) {
                continue;
            }
            let id = states.len() as u32;
            seen.insert(next.clone(), id);
            parent.push((node, a, depth + 1));
            if inst.is_goal(&next) {
                let mut plan = vec![];
                let mut n = id;
                while n != 0 {
                    let (p, a, _) = parent[n as usize];
                    plan.push(a);
                    n = p;
                }
                plan.reverse();
                return Some(plan);
            }
            let dead = inst.ends_when.as_ref().is_some_and(|d| dnf_holds(d, &next));
            states.push(next);
            if dead {
                continue;
            }
            if let Some(h) = h_add(inst, &states[id as usize], &mut scratch) {
                open.push(Reverse(((depth + 1) + 2 * h, h, id)));
            }
        }
    }
    None
}
