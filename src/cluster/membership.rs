//! Rules for membership changes that openraft 0.9 leaves to its caller.
//!
//! openraft finishes an unfinished joint configuration before it applies any new change: the
//! next `change_membership` (or `add_learner`) first writes the joint's final configuration.
//! A leader that is not in that final configuration would take itself out of the cluster
//! while it still leads, which openraft does not support (it has no leadership transfer, and
//! a debug build stops on its "only leader" assertion). A change is therefore made only by a
//! leader that stays a voter once every pending change is done.

use std::collections::BTreeSet;

use openraft::{BasicNode, RaftMetrics};

/// Voters once the pending joint configuration (if any) is finished: the last config.
pub fn final_voters(metrics: &RaftMetrics<u64, BasicNode>) -> BTreeSet<u64> {
    metrics
        .membership_config
        .membership()
        .get_joint_config()
        .last()
        .cloned()
        .unwrap_or_default()
}

/// Why this node must not make a membership change now, or `None` when it may. `removing` is
/// the node a removal would take out (`None` for an addition).
pub fn change_refused(
    metrics: &RaftMetrics<u64, BasicNode>,
    removing: Option<u64>,
) -> Option<String> {
    let me = metrics.id;
    if removing == Some(me) {
        return Some(
            "the leader cannot remove itself: stop it so another node leads, then remove it there"
                .into(),
        );
    }
    if !final_voters(metrics).contains(&me) {
        return Some(format!(
            "node {me} leads but an unfinished membership change takes it out: the change \
             can only be finished by a node that stays; stop this one so another leads"
        ));
    }
    None
}

/// Why the voters `after` a change would have no reachable majority, or `None` when they
/// would. `reachable` says whether a voter answers now (the leader counts itself).
pub fn quorum_refusal(after: &BTreeSet<u64>, reachable: impl Fn(u64) -> bool) -> Option<String> {
    if after.is_empty() {
        return Some("the change would leave no voter".into());
    }
    let (up, down): (Vec<u64>, Vec<u64>) = after.iter().partition(|&&n| reachable(n));
    let majority = after.len() / 2 + 1;
    if up.len() >= majority {
        return None;
    }
    Some(format!(
        "after the change the voters would be {after:?}, of which only {up:?} answer (a \
         majority needs {majority}; not answering: {down:?}): the cluster would lose its quorum"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use openraft::{CommittedLeaderId, LogId, Membership, ServerState, StoredMembership, Vote};

    use super::*;

    fn metrics(id: u64, configs: Vec<BTreeSet<u64>>) -> RaftMetrics<u64, BasicNode> {
        let nodes: BTreeMap<u64, BasicNode> = configs
            .iter()
            .flatten()
            .map(|&n| (n, BasicNode::new(format!("node{n}:7000"))))
            .collect();
        let membership = Membership::new(configs, nodes);
        let mut m = RaftMetrics::new_initial(id);
        m.state = ServerState::Leader;
        m.current_leader = Some(id);
        m.vote = Vote::new_committed(1, id);
        m.membership_config = Arc::new(StoredMembership::new(
            Some(LogId::new(CommittedLeaderId::new(1, id), 1)),
            membership,
        ));
        m
    }

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_leader_in_a_uniform_config_may_change_others_not_itself() {
        let m = metrics(1, vec![set(&[1, 2, 3])]);
        assert_eq!(change_refused(&m, Some(2)), None);
        assert_eq!(change_refused(&m, None), None);
        assert!(change_refused(&m, Some(1))
            .unwrap()
            .contains("cannot remove itself"));
    }

    #[test]
    fn a_change_needs_a_reachable_majority_of_the_voters_after_it() {
        let up = |ids: &'static [u64]| move |n: u64| ids.contains(&n);
        // One node adding an unreachable second: 1 of 2 answers.
        assert!(quorum_refusal(&set(&[1, 2]), up(&[1])).is_some());
        assert_eq!(quorum_refusal(&set(&[1, 2]), up(&[1, 2])), None);
        // Three nodes, one down: removing a live one leaves 1 of 2.
        assert!(quorum_refusal(&set(&[1, 3]), up(&[1, 2])).is_some());
        // Removing the dead one leaves 2 of 2.
        assert_eq!(quorum_refusal(&set(&[1, 2]), up(&[1, 2])), None);
        assert_eq!(quorum_refusal(&set(&[1, 2, 3, 4]), up(&[1, 2, 3])), None);
        assert!(quorum_refusal(&set(&[1, 2, 3, 4]), up(&[1, 2])).is_some());
        assert!(quorum_refusal(&BTreeSet::new(), up(&[1])).is_some());
    }

    #[test]
    fn a_leader_an_unfinished_joint_config_takes_out_may_change_nothing() {
        // Node 2 was being removed ({1..5} -> {1,3,4,5}) when it became leader.
        let m = metrics(2, vec![set(&[1, 2, 3, 4, 5]), set(&[1, 3, 4, 5])]);
        assert_eq!(final_voters(&m), set(&[1, 3, 4, 5]));
        assert!(change_refused(&m, Some(3)).unwrap().contains("unfinished"));
        assert!(change_refused(&m, None).is_some());
        // A leader that stays may finish it.
        let m = metrics(1, vec![set(&[1, 2, 3, 4, 5]), set(&[1, 3, 4, 5])]);
        assert_eq!(change_refused(&m, Some(3)), None);
    }
}
