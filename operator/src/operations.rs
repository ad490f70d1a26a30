//! The journal of long-running Redis changes in `status.operations`: a reshard starts when
//! a pass finds slots to move or pods to empty, records every step's progress, and ends
//! when the cluster has converged on the new shard count (or is superseded by another
//! change of `shards`). Pure: the admin pass's report in, the journal out.
//!
//! The journal is a record, not the source of truth: every pass plans from the cluster
//! itself, so an operator that restarts (or a new leader) resumes where the cluster is,
//! and the journal continues the running entry.

use k8s_openapi::jiff::Timestamp;
use socketfleet_api::crd::Operation;

use crate::redis_cluster::{Action, Report};

pub const RESHARD: &str = "Reshard";
const RUNNING: &str = "Running";
/// Entries kept, newest last.
const KEEP: usize = 5;

/// The journal after a pass that found `report` with `shards` asked for.
pub fn step(prev: &[Operation], shards: i32, report: Option<&Report>, now: Timestamp) -> Vec<Operation> {
    let mut ops = prev.to_vec();
    let Some(r) = report else { return ops };
    let (slots, keys) = r.actions.iter().fold((0, 0), |(s, k), a| match a {
        Action::MoveSlots { slots, keys, .. } => (s + *slots as i64, k + *keys as i64),
        _ => (s, k),
    });
    let busy = r.slots_to_move > 0 || r.leaving_busy > 0 || slots > 0 || r.actions.iter().any(|a| matches!(a, Action::HandOver { .. }));
    let stamp = now.to_string();
    let running = ops.iter().position(|o| o.type_ == RESHARD && o.state == RUNNING);
    if let Some(i) = running
        && ops[i].to != shards
    {
        ops[i].state = "Superseded".into();
        ops[i].finished = Some(stamp.clone());
    }
    let running = ops.iter().position(|o| o.type_ == RESHARD && o.state == RUNNING);
    let i = match running {
        Some(i) => i,
        None if busy => {
            ops.push(Operation {
                type_: RESHARD.into(),
                // The primaries serving when it starts.
                from: r.primaries as i32,
                to: shards,
                state: RUNNING.into(),
                started: stamp.clone(),
                ..Operation::default()
            });
            ops.len() - 1
        }
        None => return trim(ops),
    };
    let op = &mut ops[i];
    op.slots_moved += slots;
    op.keys_moved += keys;
    op.slots_remaining = r.slots_to_move as i64;
    // The step's moves summed, then whatever else it did.
    let moved = (slots > 0).then(|| format!("moved {slots} slots ({keys} keys)"));
    let rest = r.actions.iter().filter(|a| !matches!(a, Action::MoveSlots { .. })).map(Action::to_string);
    let step: Vec<String> = moved.into_iter().chain(rest).collect();
    if !step.is_empty() {
        op.last_step = step.join("; ");
        op.last_step_time = Some(stamp.clone());
    }
    if r.converged && !busy {
        op.state = "Succeeded".into();
        op.finished = Some(stamp);
        op.last_step = format!("{} primaries serve all slots", r.primaries);
    }
    trim(ops)
}

fn trim(mut ops: Vec<Operation>) -> Vec<Operation> {
    let extra = ops.len().saturating_sub(KEEP);
    ops.drain(..extra);
    ops
}

/// A reshard is running: the next pass should come soon.
pub fn resharding(ops: &[Operation]) -> bool {
    ops.iter().any(|o| o.type_ == RESHARD && o.state == RUNNING)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(moved: usize, remaining: usize, leaving: usize, converged: bool) -> Report {
        let mut r = Report { primaries: 3, slots_to_move: remaining, leaving_busy: leaving, converged, ..Report::default() };
        if moved > 0 {
            r.actions.push(Action::MoveSlots { from: "r-0".into(), to: "r-6".into(), slots: moved, keys: 2 * moved });
        }
        r
    }

    #[test]
    fn a_reshard_is_journaled_from_first_move_to_convergence() {
        let t = Timestamp::UNIX_EPOCH;
        let settled = step(&[], 3, Some(&report(0, 0, 0, true)), t);
        assert!(settled.is_empty(), "nothing to do, nothing journaled");
        let ops = step(&[], 5, Some(&report(100, 6453, 0, false)), t);
        assert_eq!(
            (ops[0].from, ops[0].to, ops[0].state.as_str(), ops[0].slots_moved, ops[0].slots_remaining),
            (3, 5, "Running", 100, 6453)
        );
        assert!(ops[0].last_step.contains("moved 100 slots (200 keys)"), "{}", ops[0].last_step);
        assert!(resharding(&ops));
        // The operator restarted: the next pass continues the same entry.
        let ops = step(&ops, 5, Some(&report(6453, 0, 0, false)), t);
        assert_eq!((ops.len(), ops[0].slots_moved, ops[0].slots_remaining), (1, 6553, 0));
        let ops = step(&ops, 5, Some(&report(0, 0, 0, true)), t);
        assert_eq!(ops[0].state, "Succeeded");
        assert!(!resharding(&ops));
    }

    #[test]
    fn a_scale_in_runs_until_the_leaving_pods_are_gone_and_a_new_change_supersedes() {
        let t = Timestamp::UNIX_EPOCH;
        let ops = step(&[], 3, Some(&report(10, 0, 4, false)), t);
        let ops = step(&ops, 3, Some(&report(0, 0, 0, false)), t);
        assert_eq!(ops[0].state, "Running", "not converged yet: the pods are still going");
        let ops = step(&ops, 4, Some(&report(5, 3000, 0, false)), t);
        assert_eq!((ops[0].state.as_str(), ops[1].state.as_str(), ops[1].to), ("Superseded", "Running", 4));
        let many = (0..10).fold(ops, |ops, i| step(&ops, 5 + i, Some(&report(1, 1, 0, false)), t));
        assert_eq!(many.len(), KEEP);
    }
}
