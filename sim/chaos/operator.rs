//! The operator: a simulated host that changes the cluster's membership under load, as an
//! administrator would, through the nodes' admin HTTP API (`DELETE` then `POST
//! /api/v1/cluster/nodes`). The nemesis queues its orders; every request has a deadline, and
//! an order that fails is tried again until it is done.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel::net::SimNet;
use keel_oracle::admin::request;

use keel_oracle::history::{Event, History};

use super::now_ms;

/// Where every node's admin API listens.
pub const ADMIN_PORT: u16 = 18083;

/// What the operator is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Take `node` out of the membership.
    Remove { node: u64 },
    /// Put `node` back (as a learner, then a voter).
    Add { node: u64 },
    /// Ask for node `id` at `addr`, which is not there: asked once, the answer must be a
    /// refusal (the membership checker catches an acceptance).
    AddBogus { id: u64, addr: String },
}

/// Orders from the nemesis to the operator.
#[derive(Clone, Default)]
pub struct Orders(Arc<Mutex<VecDeque<Order>>>);

impl Orders {
    pub fn push(&self, order: Order) {
        self.lock().push_back(order);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Order>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn front(&self) -> Option<Order> {
        self.lock().front().cloned()
    }

    fn done(&self) {
        self.lock().pop_front();
    }
}

/// Deadline of one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between two tries of an order, and between two looks at the queue.
const PAUSE: Duration = Duration::from_millis(200);

/// One request to `host`'s (a node's name) admin API: the status and body, or `None`.
async fn http(host: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let addr = format!("{host}:{ADMIN_PORT}");
    request(&SimNet, &addr, method, path, &[], body, REQUEST_TIMEOUT).await
}

/// The leader as some node reports it.
async fn find_leader(nodes: &[String]) -> Option<u64> {
    for node in nodes {
        if let Some((200, body)) = http(node, "GET", "/api/v1/cluster", "").await {
            let view: serde_json::Value = serde_json::from_str(&body).ok()?;
            if let Some(leader) = view["leader"].as_u64() {
                return Some(leader);
            }
        }
    }
    None
}

/// Carries out one order through the leader; true once it is done (or needs doing no more).
async fn carry_out(order: &Order, nodes: &[String]) -> bool {
    let Some(leader) = find_leader(nodes).await else {
        return false;
    };
    let leader_host = &nodes[leader as usize - 1];
    let (method, path, body) = match order {
        Order::Remove { node } => (
            "DELETE",
            format!("/api/v1/cluster/nodes/{node}"),
            String::new(),
        ),
        Order::Add { node } => {
            let addr = format!("{}:7000", nodes[*node as usize - 1]);
            let body = format!("{{\"id\": {node}, \"addr\": \"{addr}\"}}");
            ("POST", "/api/v1/cluster/nodes".to_string(), body)
        }
        Order::AddBogus { id, addr } => {
            let body = format!("{{\"id\": {id}, \"addr\": \"{addr}\"}}");
            ("POST", "/api/v1/cluster/nodes".to_string(), body)
        }
    };
    let answer = http(leader_host, method, &path, &body).await;
    if let Order::AddBogus { .. } = order {
        // Done whatever the answer: a refusal is what should happen, an acceptance is the
        // membership checker's to report, and no answer (the leader moved or the request
        // timed out) may have been either.
        return true;
    }
    match answer {
        Some((200, _)) => true,
        // Removing a node that is not a member any more, or the leader (which cannot remove
        // itself; putting it back later finds it there): nothing to do. Any other refusal
        // (leadership moved; a leader that an unfinished change takes out) is tried again.
        Some((404, _)) => matches!(order, Order::Remove { .. }),
        Some((409, reply)) => {
            matches!(order, Order::Remove { .. }) && reply.contains("cannot remove itself")
        }
        _ => false,
    }
}

/// The operator's program: carries out the queued orders, one at a time, in order.
pub async fn operator(orders: Orders, nodes: Vec<String>, history: History) -> turmoil::Result {
    loop {
        let Some(order) = orders.front() else {
            tokio::time::sleep(PAUSE).await;
            continue;
        };
        if carry_out(&order, &nodes).await {
            history.record(
                now_ms(),
                Event::Fault {
                    what: format!("operator: {order:?} done"),
                },
            );
            orders.done();
        } else {
            tokio::time::sleep(PAUSE).await;
        }
    }
}
