//! Topic routing: which subscriptions match a topic name (MQTT §4.7, §4.8.2).
//!
//! Pure: a trie of topic filters with `+`/`#` wildcards, the `$`-topic rule and shared
//! subscriptions. It knows nothing about sessions, connections or delivery; the broker decides
//! what to do with each match (aggregate overlapping subscriptions, pick a shared member).

mod trie;

pub use trie::{Match, Router, SharedGroup};

/// True when the (non-shared) `filter` matches the topic name `topic`, by the rules of §4.7.
///
/// The reference the trie is tested against, and what scans of retained messages use.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match (level, topic_levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (_, Some(t)) if t == level => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::TopicFilter;

    /// Topic levels from a tiny alphabet, so that filters and topics often overlap.
    fn levels(wildcards: bool) -> impl Strategy<Value = Vec<String>> {
        let level = if wildcards {
            prop_oneof![
                Just("a"),
                Just("b"),
                Just(""),
                Just("$x"),
                Just("+"),
                Just("#")
            ]
            .boxed()
        } else {
            prop_oneof![Just("a"), Just("b"), Just(""), Just("$x")].boxed()
        };
        proptest::collection::vec(level.prop_map(String::from), 1..5)
    }

    #[test]
    fn reference_matcher_follows_spec_examples() {
        assert!(filter_matches("sport/#", "sport"));
        assert!(filter_matches("sport/+", "sport/"));
        assert!(!filter_matches("sport/+", "sport"));
        assert!(filter_matches("+/+", "/finance"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/x"));
    }

    proptest! {
        /// The trie reports exactly the subscriptions whose filters match, per the reference.
        #[test]
        fn trie_agrees_with_reference(
            filters in proptest::collection::vec(levels(true), 1..12),
            topics in proptest::collection::vec(levels(false), 1..8),
        ) {
            let mut router = Router::new();
            let mut valid = Vec::new();
            for (key, levels) in filters.iter().enumerate() {
                if let Ok(filter) = TopicFilter::new(&levels.join("/")) {
                    router.insert(&filter, key, ());
                    valid.push((key, filter));
                }
            }
            for topic in topics {
                let topic = topic.join("/");
                let mut got = Vec::new();
                router.matches(&topic, |m| {
                    if let Match::Plain(key, _) = m {
                        got.push(*key);
                    }
                });
                got.sort();
                let expected: Vec<usize> = valid
                    .iter()
                    .filter(|(_, f)| filter_matches(f.as_str(), &topic))
                    .map(|(key, _)| *key)
                    .collect();
                prop_assert_eq!(got, expected, "topic {:?}", topic);
            }
            for (key, filter) in &valid {
                prop_assert!(router.remove(filter, key).is_some());
            }
            prop_assert!(router.is_empty());
        }
    }
}
