//! The subscription trie: one node per topic level, `+` and `#` as special children.

use std::collections::BTreeMap;

use crate::codec::TopicFilter;

/// The members of one shared subscription `$share/{group}/{filter}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedGroup<K: Ord, V> {
    pub group: Box<str>,
    /// The filter after the group, as matched against topic names.
    pub filter: Box<str>,
    pub members: BTreeMap<K, V>,
}

/// One matching subscription, as reported by [`Router::matches`].
#[derive(Debug, PartialEq, Eq)]
pub enum Match<'a, K: Ord, V> {
    /// An ordinary subscription of `key`.
    Plain(&'a K, &'a V),
    /// A shared subscription: exactly one member should receive the message.
    Shared(&'a SharedGroup<K, V>),
}

/// A trie node: the subscriptions whose filter ends here and the levels below.
#[derive(Debug, Clone)]
struct Node<K: Ord, V> {
    children: BTreeMap<Box<str>, Node<K, V>>,
    /// The `+` child.
    plus: Option<Box<Node<K, V>>>,
    /// The `#` child; its subscriptions match this level and everything below.
    hash: Option<Box<Node<K, V>>>,
    subscribers: BTreeMap<K, V>,
    /// Shared subscriptions ending here, by group name.
    shared: BTreeMap<Box<str>, SharedGroup<K, V>>,
}

impl<K: Ord, V> Default for Node<K, V> {
    fn default() -> Self {
        Node {
            children: BTreeMap::new(),
            plus: None,
            hash: None,
            subscribers: BTreeMap::new(),
            shared: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.subscribers.is_empty()
            && self.shared.is_empty()
    }

    fn child(&self, level: &str) -> Option<&Node<K, V>> {
        match level {
            "+" => self.plus.as_deref(),
            "#" => self.hash.as_deref(),
            _ => self.children.get(level),
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        match level {
            "+" => self.plus.as_deref_mut(),
            "#" => self.hash.as_deref_mut(),
            _ => self.children.get_mut(level),
        }
    }

    fn child_or_insert(&mut self, level: &str) -> &mut Node<K, V> {
        match level {
            "+" => self.plus.get_or_insert_with(Default::default),
            "#" => self.hash.get_or_insert_with(Default::default),
            _ => self.children.entry(level.into()).or_default(),
        }
    }

    fn remove_child(&mut self, level: &str) {
        match level {
            "+" => self.plus = None,
            "#" => self.hash = None,
            _ => {
                self.children.remove(level);
            }
        }
    }
}

/// Subscriptions by topic filter, keyed by subscriber `K` with data `V` (options,
/// subscription identifier). A subscriber has at most one subscription per filter
/// ([MQTT-3.8.4-3]: a new one replaces the old).
#[derive(Debug, Clone)]
pub struct Router<K: Ord, V> {
    root: Node<K, V>,
    /// Number of (filter, subscriber) pairs.
    len: usize,
    /// Bytes of the filters of those pairs, each counted once per subscriber (what a flood
    /// of long filters costs, for the subscription byte bounds).
    filter_bytes: usize,
}

impl<K: Ord, V> Default for Router<K, V> {
    fn default() -> Self {
        Router {
            root: Node::default(),
            len: 0,
            filter_bytes: 0,
        }
    }
}

impl<K: Ord + Clone, V> Router<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of (filter, subscriber) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the filters of every (filter, subscriber) pair.
    pub fn filter_bytes(&self) -> usize {
        self.filter_bytes
    }

    /// Adds or replaces the subscription of `key` to `filter`; returns the one replaced.
    pub fn insert(&mut self, filter: &TopicFilter, key: K, value: V) -> Option<V> {
        let shared = filter.shared();
        let mut node = &mut self.root;
        for level in filter.matching_filter().split('/') {
            node = node.child_or_insert(level);
        }
        let old = match shared {
            None => node.subscribers.insert(key, value),
            Some((group, matching)) => node
                .shared
                .entry(group.into())
                .or_insert_with(|| SharedGroup {
                    group: group.into(),
                    filter: matching.into(),
                    members: BTreeMap::new(),
                })
                .members
                .insert(key, value),
        };
        if old.is_none() {
            self.len += 1;
            self.filter_bytes += filter.len();
        }
        old
    }

    /// Removes the subscription of `key` to `filter`, pruning nodes left empty.
    pub fn remove(&mut self, filter: &TopicFilter, key: &K) -> Option<V> {
        let levels: Vec<&str> = filter.matching_filter().split('/').collect();
        let mut node = &mut self.root;
        for level in &levels {
            node = node.child_mut(level)?;
        }
        let removed = match filter.shared() {
            None => node.subscribers.remove(key),
            Some((group, _)) => {
                let members = &mut node.shared.get_mut(group)?.members;
                let removed = members.remove(key);
                if members.is_empty() {
                    node.shared.remove(group);
                }
                removed
            }
        };
        if removed.is_some() {
            // Never below zero: every subscription removed was counted when it was inserted.
            self.len = self
                .len
                .checked_sub(1)
                .expect("subscription count below zero");
            self.filter_bytes = (self.filter_bytes.checked_sub(filter.len()))
                .expect("subscription filter bytes below zero");
            self.prune(&levels);
        }
        removed
    }

    /// Removes empty nodes along `levels`, deepest first (no recursion).
    fn prune(&mut self, levels: &[&str]) {
        for depth in (0..levels.len()).rev() {
            let mut parent = &mut self.root;
            for level in &levels[..depth] {
                match parent.child_mut(level) {
                    Some(child) => parent = child,
                    None => return,
                }
            }
            let level = levels[depth];
            match parent.child(level) {
                Some(child) if child.is_empty() => parent.remove_child(level),
                _ => return,
            }
        }
    }

    /// The subscription of `key` to `filter`, if any.
    pub fn get(&self, filter: &TopicFilter, key: &K) -> Option<&V> {
        let mut node = &self.root;
        for level in filter.matching_filter().split('/') {
            node = node.child(level)?;
        }
        match filter.shared() {
            None => node.subscribers.get(key),
            Some((group, _)) => node.shared.get(group)?.members.get(key),
        }
    }

    /// The shared subscription `$share/{group}/{filter}`, if it has members.
    pub fn shared_group(&self, group: &str, filter: &str) -> Option<&SharedGroup<K, V>> {
        let mut node = &self.root;
        for level in filter.split('/') {
            node = node.child(level)?;
        }
        node.shared.get(group)
    }

    /// Calls `visit` for every subscription whose filter matches `topic`, in a deterministic
    /// order. Overlapping subscriptions of one subscriber are reported once each.
    ///
    /// Topics starting with `$` are not matched by a filter whose first level is a wildcard
    /// ([MQTT-4.7.2-1]).
    pub fn matches<'a>(&'a self, topic: &str, mut visit: impl FnMut(Match<'a, K, V>)) {
        let levels: Vec<&str> = topic.split('/').collect();
        let system = topic.starts_with('$');
        let mut stack: Vec<(&Node<K, V>, usize)> = vec![(&self.root, 0)];
        while let Some((node, depth)) = stack.pop() {
            let wildcard_allowed = !(system && depth == 0);
            if let Some(hash) = node.hash.as_deref().filter(|_| wildcard_allowed) {
                emit(hash, &mut visit);
            }
            let Some(level) = levels.get(depth) else {
                emit(node, &mut visit);
                continue;
            };
            if let Some(plus) = node.plus.as_deref().filter(|_| wildcard_allowed) {
                stack.push((plus, depth + 1));
            }
            if let Some(child) = node.children.get(*level) {
                stack.push((child, depth + 1));
            }
        }
    }
}

fn emit<'a, K: Ord, V>(node: &'a Node<K, V>, visit: &mut impl FnMut(Match<'a, K, V>)) {
    for (key, value) in &node.subscribers {
        visit(Match::Plain(key, value));
    }
    for group in node.shared.values() {
        visit(Match::Shared(group));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    /// The subscribers (plain) and groups (shared) matching `topic`, sorted.
    fn matching(router: &Router<u32, ()>, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        router.matches(topic, |m| match m {
            Match::Plain(key, _) => out.push(key.to_string()),
            Match::Shared(group) => out.push(format!("{}:{}", group.group, group.filter)),
        });
        out.sort();
        out
    }

    fn router(subscriptions: &[(&str, u32)]) -> Router<u32, ()> {
        let mut router = Router::new();
        for (f, key) in subscriptions {
            router.insert(&filter(f), *key, ());
        }
        router
    }

    #[test]
    fn wildcards_match_as_the_spec_examples_say() {
        // §4.7.1.2: "sport/tennis/player1/#" matches the level itself and all below.
        let r = router(&[(("sport/tennis/player1/#"), 1), ("sport/#", 2), ("#", 3)]);
        assert_eq!(matching(&r, "sport/tennis/player1"), ["1", "2", "3"]);
        assert_eq!(
            matching(&r, "sport/tennis/player1/ranking"),
            ["1", "2", "3"]
        );
        assert_eq!(matching(&r, "sport"), ["2", "3"]);
        // §4.7.1.3: "sport/+" does not match "sport" but matches "sport/".
        let r = router(&[("sport/+", 1), ("+/+", 2), ("/+", 3), ("+", 4)]);
        assert_eq!(matching(&r, "sport"), ["4"]);
        assert_eq!(matching(&r, "sport/"), ["1", "2"]);
        assert_eq!(matching(&r, "/finance"), ["2", "3"]);
        assert_eq!(matching(&r, "a/b/c"), Vec::<String>::new());
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        let r = router(&[
            ("#", 1),
            ("+/monitor/Clients", 2),
            ("$SYS/#", 3),
            ("$SYS/monitor/+", 4),
        ]);
        assert_eq!(matching(&r, "$SYS/monitor/Clients"), ["3", "4"]);
        assert_eq!(matching(&r, "SYS/monitor/Clients"), ["1", "2"]);
    }

    #[test]
    fn overlapping_subscriptions_each_match() {
        let r = router(&[("a/b", 1), ("a/+", 1), ("a/#", 1), ("a/b", 2)]);
        assert_eq!(matching(&r, "a/b"), ["1", "1", "1", "2"]);
    }

    #[test]
    fn shared_groups_match_once_per_group() {
        let r = router(&[
            ("$share/g1/a/+", 1),
            ("$share/g1/a/+", 2),
            ("$share/g2/a/+", 3),
            ("$share/g1/a/b", 4),
            ("a/+", 5),
        ]);
        assert_eq!(matching(&r, "a/b"), ["5", "g1:a/+", "g1:a/b", "g2:a/+"]);
        let mut members = Vec::new();
        r.matches("a/x", |m| {
            if let Match::Shared(g) = m {
                members.push((
                    g.group.to_string(),
                    g.members.keys().copied().collect::<Vec<_>>(),
                ));
            }
        });
        members.sort();
        assert_eq!(members, [("g1".into(), vec![1, 2]), ("g2".into(), vec![3])]);
    }

    #[test]
    fn insert_replaces_and_remove_prunes() {
        let mut r: Router<u32, u8> = Router::new();
        assert_eq!(r.insert(&filter("a/+/c"), 1, 0), None);
        assert_eq!(r.insert(&filter("a/+/c"), 1, 1), Some(0));
        assert_eq!(r.insert(&filter("$share/g/a/#"), 1, 2), None);
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(&filter("a/+/c"), &1), Some(&1));
        assert_eq!(r.remove(&filter("a/+/c"), &2), None);
        assert_eq!(r.remove(&filter("a/+/c"), &1), Some(1));
        assert_eq!(r.remove(&filter("$share/g/a/#"), &1), Some(2));
        assert!(r.is_empty());
        assert!(r.root.is_empty(), "every node was pruned: {:?}", r.root);
    }

    #[test]
    fn remove_keeps_nodes_still_in_use() {
        let mut r = router(&[("a/b/c", 1), ("a/b", 2)]);
        r.remove(&filter("a/b/c"), &1);
        assert_eq!(matching(&r, "a/b"), ["2"]);
        assert_eq!(matching(&r, "a/b/c"), Vec::<String>::new());
    }
}
