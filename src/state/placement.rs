//! Where things live in a cluster: which node serves each session that ends with its
//! connection (and what it subscribed to, so other nodes can route to it), and the last batch
//! of proposals applied from each node.
//!
//! Part of the replicated [`super::State`]: a *local* session (one that ends with its
//! connection) keeps its queue on its node only, but its existence and its subscriptions are
//! committed, so that a publish on any node finds it, a connection with the same client id on
//! another node takes it over (fenced by the commit, docs/design.md §1 G5), and a node that
//! restarts or is declared gone has its sessions cleared in log order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::TopicFilter;
use crate::router::Router;

use super::message::ClientId;
use super::named_number::named_number;
use super::session::Subscription;

named_number! {
    /// A node of the cluster, as the replicated state and the broker name it: the same number as
    /// the node's Raft id (openraft's `NodeId`, which stays a plain `u64` for openraft and the
    /// cluster code around it), converted where a Raft id becomes part of a [`Place`] or a
    /// command. Serialized as the bare number (`transparent`): the log and snapshots hold the
    /// same bytes as when this was a `u64`.
    pub struct NodeId;
}

impl From<u64> for NodeId {
    fn from(raft_id: u64) -> NodeId {
        NodeId(raft_id)
    }
}

impl From<NodeId> for u64 {
    fn from(node: NodeId) -> u64 {
        node.0
    }
}

named_number! {
    /// Which run of a node: counted in the node's store, one more at every start (from 1), so
    /// that what a run left in the log (its connections, its replies) is told apart from the
    /// next run's. Serialized as the bare number (`transparent`).
    pub struct Incarnation;
}

impl Incarnation {
    /// Later than every run: a [`super::Command::NodeDown`] up to it ends every run of the
    /// node (a node declared gone).
    pub const MAX: Incarnation = Incarnation(u64::MAX);
}

/// A run of a node: where a connection is served. The incarnation grows with every start of
/// the node, so a place of an earlier run is told apart from the current one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Place {
    pub node: NodeId,
    pub incarnation: Incarnation,
}

impl Place {
    /// Whether this is a place of `node` in a run before `incarnation`.
    pub fn is_before(&self, node: NodeId, incarnation: Incarnation) -> bool {
        self.node == node && self.incarnation < incarnation
    }
}

/// Names a batch of proposals: the node and run that made it, and its number in that run
/// (from 1, consecutive). A batch may reach the log twice (a proposal retried after a timeout
/// whose first attempt did commit); only the first copy is applied.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct BatchId {
    pub place: Place,
    pub seq: u64,
}

/// A local session as the replicated state knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalSession {
    pub place: Place,
    pub subscriptions: BTreeMap<TopicFilter, Subscription>,
}

/// The cluster part of the replicated state.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    local: BTreeMap<ClientId, LocalSession>,
    /// The subscriptions of `local`, indexed for routing.
    routes: Router<ClientId, Subscription>,
    /// The last batch applied from each node.
    batches: BTreeMap<NodeId, BatchId>,
}

impl Placement {
    /// A placement from its durable parts (a snapshot), with the route index rebuilt.
    pub(super) fn from_parts(
        local: BTreeMap<ClientId, LocalSession>,
        batches: BTreeMap<NodeId, BatchId>,
    ) -> Placement {
        let mut routes = Router::new();
        for (client_id, session) in &local {
            for (filter, subscription) in &session.subscriptions {
                routes.insert(filter, client_id.clone(), *subscription);
            }
        }
        Placement {
            local,
            routes,
            batches,
        }
    }

    pub fn local_sessions(&self) -> &BTreeMap<ClientId, LocalSession> {
        &self.local
    }

    pub fn batches(&self) -> &BTreeMap<NodeId, BatchId> {
        &self.batches
    }

    pub fn routes(&self) -> &Router<ClientId, Subscription> {
        &self.routes
    }

    /// Where the local session of a client id is served, if one is.
    pub fn local_place(&self, client_id: &str) -> Option<Place> {
        self.local.get(client_id).map(|s| s.place)
    }

    /// Whether `batch` is new, recording it if so: the first batch of a later run of its node,
    /// or a later batch of the same run. An older or repeated one is to be skipped.
    pub fn accept_batch(&mut self, batch: BatchId) -> bool {
        match self.batches.get(&batch.place.node) {
            Some(last) if *last >= batch => false,
            _ => {
                self.batches.insert(batch.place.node, batch);
                true
            }
        }
    }

    /// Registers a local session at `place`; returns the place it had, if it was registered
    /// (a takeover, from this node or another: the old connection is to go).
    pub fn open(&mut self, client_id: &ClientId, place: Place) -> Option<Place> {
        let old = self.remove(client_id);
        self.local.insert(
            client_id.clone(),
            LocalSession {
                place,
                subscriptions: BTreeMap::new(),
            },
        );
        old
    }

    /// Ends the local session of `client_id` if it is still the one at `place`.
    pub fn close(&mut self, client_id: &ClientId, place: Place) -> bool {
        if self.local_place(client_id) != Some(place) {
            return false;
        }
        self.remove(client_id);
        true
    }

    /// Adds subscriptions to the local session at `place` (none if it is not there).
    pub fn subscribe(
        &mut self,
        client_id: &ClientId,
        place: Place,
        subscriptions: &[(TopicFilter, Subscription)],
    ) {
        let Some(session) = self.local.get_mut(client_id).filter(|s| s.place == place) else {
            return;
        };
        for (filter, subscription) in subscriptions {
            session.subscriptions.insert(filter.clone(), *subscription);
            self.routes.insert(filter, client_id.clone(), *subscription);
        }
    }

    pub fn unsubscribe(&mut self, client_id: &ClientId, place: Place, filters: &[TopicFilter]) {
        let Some(session) = self.local.get_mut(client_id).filter(|s| s.place == place) else {
            return;
        };
        for filter in filters {
            if session.subscriptions.remove(filter).is_some() {
                self.routes.remove(filter, client_id);
            }
        }
    }

    /// Ends every local session of `node` from a run before `incarnation`; returns them with
    /// the place they had.
    pub fn clear_node(&mut self, node: NodeId, incarnation: Incarnation) -> Vec<(ClientId, Place)> {
        let gone: Vec<(ClientId, Place)> = self
            .local
            .iter()
            .filter(|(_, s)| s.place.is_before(node, incarnation))
            .map(|(c, s)| (c.clone(), s.place))
            .collect();
        for (client_id, _) in &gone {
            self.remove(client_id);
        }
        gone
    }

    /// Ends the local session of `client_id`, wherever it is; returns its place.
    pub fn take(&mut self, client_id: &ClientId) -> Option<Place> {
        self.remove(client_id)
    }

    fn remove(&mut self, client_id: &ClientId) -> Option<Place> {
        let session = self.local.remove(client_id)?;
        for filter in session.subscriptions.keys() {
            self.routes.remove(filter, client_id);
        }
        Some(session.place)
    }

    /// Checks that the route index matches the sessions; panics naming what is broken.
    pub fn validate(&self) {
        let mut count = 0;
        for (client_id, session) in &self.local {
            for (filter, subscription) in &session.subscriptions {
                assert_eq!(
                    self.routes.get(filter, client_id),
                    Some(subscription),
                    "local route {filter:?} of {client_id} missing from the index"
                );
            }
            count += session.subscriptions.len();
        }
        assert_eq!(
            self.routes.len(),
            count,
            "the route index holds unknown routes"
        );
        for (node, batch) in &self.batches {
            assert_eq!(*node, batch.place.node, "batch filed under another node");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{MqttString, QoS, SubscriptionOptions};

    fn client(name: &str) -> ClientId {
        MqttString::new(name).unwrap()
    }

    fn place(node: u64, incarnation: u64) -> Place {
        Place {
            node: NodeId(node),
            incarnation: Incarnation(incarnation),
        }
    }

    fn sub() -> Subscription {
        Subscription {
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
            identifier: None,
        }
    }

    fn filter(f: &str) -> TopicFilter {
        TopicFilter::new(f).unwrap()
    }

    #[test]
    fn a_batch_is_applied_once_and_a_stale_run_never() {
        let mut p = Placement::default();
        let batch = |incarnation, seq| BatchId {
            place: place(2, incarnation),
            seq,
        };
        assert!(p.accept_batch(batch(1, 1)));
        assert!(!p.accept_batch(batch(1, 1)), "a retried copy");
        assert!(p.accept_batch(batch(1, 2)));
        assert!(
            p.accept_batch(batch(2, 1)),
            "the next run starts again at 1"
        );
        assert!(
            !p.accept_batch(batch(1, 3)),
            "a late batch of the earlier run"
        );
        p.validate();
    }

    #[test]
    fn a_takeover_moves_the_session_and_drops_its_routes() {
        let mut p = Placement::default();
        let c = client("c");
        assert_eq!(p.open(&c, place(1, 1)), None);
        p.subscribe(&c, place(1, 1), &[(filter("t/#"), sub())]);
        assert_eq!(p.routes().len(), 1);
        assert_eq!(p.open(&c, place(2, 1)), Some(place(1, 1)));
        assert_eq!(p.routes().len(), 0);
        // The old node's late close and subscribe change nothing.
        assert!(!p.close(&c, place(1, 1)));
        p.subscribe(&c, place(1, 1), &[(filter("x"), sub())]);
        assert_eq!(p.routes().len(), 0);
        assert_eq!(p.local_place("c"), Some(place(2, 1)));
        p.validate();
    }

    #[test]
    fn clearing_a_node_ends_only_its_earlier_runs() {
        let mut p = Placement::default();
        p.open(&client("a"), place(1, 1));
        p.open(&client("b"), place(1, 2));
        p.open(&client("c"), place(2, 1));
        p.subscribe(&client("a"), place(1, 1), &[(filter("t"), sub())]);
        let gone = p.clear_node(NodeId(1), Incarnation(2));
        assert_eq!(gone, vec![(client("a"), place(1, 1))]);
        assert_eq!(p.local_sessions().len(), 2);
        assert_eq!(p.routes().len(), 0);
        p.validate();
    }
}
