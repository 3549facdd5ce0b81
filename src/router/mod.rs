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

/// True when every topic name that the (non-shared) filter `inner` matches is also matched by
/// `outer`: a subscription to `inner` can never bring a message that `outer` would not. What
/// an ACL rule granting `outer` must check before it allows a SUBSCRIBE to `inner`.
///
/// `+` covers any one level and `#` any rest, but a wildcard of `inner` is covered only by a
/// wildcard of `outer` at least as wide; and at the first level the `$` rule applies: a
/// first-level wildcard of `outer` matches no `$` topic, so it does not cover an `inner` whose
/// first level is a literal starting with `$`.
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    let inner_is_system = inner.starts_with('$');
    let mut outer_levels = outer.split('/');
    let mut inner_levels = inner.split('/');
    let mut first = true;
    loop {
        match (outer_levels.next(), inner_levels.next()) {
            (Some("#"), _) => return !(first && inner_is_system),
            (Some("+"), Some("#")) => {
                // `+/#` matches one level or more: the same as `#` at the first level, where
                // no topic has zero levels, and narrower anywhere else (`a/#` matches `a`).
                return first && outer_levels.next() == Some("#");
            }
            (Some("+"), Some(_)) => {
                if first && inner_is_system {
                    return false;
                }
            }
            (Some(o), Some(i)) => {
                if o != i {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
        first = false;
    }
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

    #[test]
    fn a_filter_covers_the_filters_it_is_wider_than() {
        for (outer, inner) in [
            ("#", "a/b"),
            ("#", "#"),
            ("a/#", "a"),
            ("a/#", "a/+/c"),
            ("+/b", "a/b"),
            ("+", "+"),
            ("a/+/#", "a/b/#"),
            ("$SYS/#", "$SYS/broker/uptime"),
            ("#", "+/x"),
            ("+/#", "#"),
        ] {
            assert!(filter_covers(outer, inner), "{outer} covers {inner}");
        }
        for (outer, inner) in [
            ("a/b", "a/+"),
            ("a/+", "a/#"),
            ("+", "#"),
            ("a", "a/#"),
            ("#", "$SYS/#"),
            ("+/broker", "$SYS/broker"),
            ("a/b", "a/b/c"),
            ("a/b/c", "a/b"),
            ("a/+/#", "a/#"),
        ] {
            assert!(
                !filter_covers(outer, inner),
                "{outer} does not cover {inner}"
            );
        }
    }

    /// Every topic of one to five levels over the test alphabet.
    fn all_topics() -> Vec<String> {
        let alphabet = ["a", "b", "", "$x"];
        let mut topics: Vec<String> = alphabet.iter().map(|l| l.to_string()).collect();
        let mut last = topics.clone();
        for _ in 1..5 {
            last = last
                .iter()
                .flat_map(|t| alphabet.iter().map(move |l| format!("{t}/{l}")))
                .collect();
            topics.extend(last.iter().cloned());
        }
        topics
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// `filter_covers` says yes exactly when no topic matches `inner` but not `outer`.
        #[test]
        fn covering_agrees_with_matching(outer in levels(true), inner in levels(true)) {
            let (outer, inner) = (outer.join("/"), inner.join("/"));
            prop_assume!(TopicFilter::new(&outer).is_ok() && TopicFilter::new(&inner).is_ok());
            let escapes = all_topics()
                .into_iter()
                .find(|t| filter_matches(&inner, t) && !filter_matches(&outer, t));
            prop_assert_eq!(
                filter_covers(&outer, &inner),
                escapes.is_none(),
                "{} over {}: {:?} escapes", outer, inner, escapes
            );
        }
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
