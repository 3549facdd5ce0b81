//! Validated topic names (what a PUBLISH goes to) and topic filters (what a SUBSCRIBE matches).

use bytes::Bytes;

use super::error::DecodeError;
use super::types::{contains_any, MqttString};
use super::wire::Reader;

/// The prefix that marks a shared subscription (§4.8.2).
pub const SHARED_PREFIX: &str = "$share/";

/// A topic name: an MQTT string with no wildcard characters ([MQTT-3.3.2-2]).
///
/// It may be empty: MQTT 5 allows an empty topic when a Topic Alias stands for it. Packet
/// decoders reject empty names where the protocol does ([MQTT-4.7.3-1]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TopicName(MqttString);

impl TopicName {
    pub fn from_string(s: MqttString) -> Result<TopicName, DecodeError> {
        check_topic_name(s.as_bytes())?;
        Ok(TopicName(s))
    }

    /// Reads a topic name from a packet body, checked before it shares the buffer.
    pub(crate) fn read(r: &mut Reader) -> Result<TopicName, DecodeError> {
        Ok(TopicName(r.string_checked(check_topic_name)?))
    }

    pub fn new(s: &str) -> Result<TopicName, DecodeError> {
        TopicName::from_string(MqttString::new(s)?)
    }

    pub fn from_bytes(bytes: Bytes) -> Result<TopicName, DecodeError> {
        TopicName::from_string(MqttString::from_bytes(bytes)?)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_mqtt_string(&self) -> &MqttString {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Topics starting with `$` are not matched by filters starting with a wildcard
    /// ([MQTT-4.7.2-1]).
    pub fn is_system(&self) -> bool {
        self.0.as_bytes().first() == Some(&b'$')
    }
}

impl std::fmt::Debug for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::ops::Deref for TopicName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// A topic filter: non-empty ([MQTT-4.7.3-1]), `#` only as the whole last level
/// ([MQTT-4.7.1-1]), `+` only as a whole level ([MQTT-4.7.1-2]). A shared subscription
/// `$share/{group}/{filter}` additionally needs a non-empty group without `/`, `+` or `#`
/// ([MQTT-4.8.2-1]) and a valid filter after it ([MQTT-4.8.2-2]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicFilter(MqttString);

impl TopicFilter {
    pub fn from_string(s: MqttString) -> Result<TopicFilter, DecodeError> {
        check_topic_filter(s.as_bytes())?;
        Ok(TopicFilter(s))
    }

    /// Reads a topic filter from a packet body, checked before it shares the buffer.
    pub(crate) fn read(r: &mut Reader) -> Result<TopicFilter, DecodeError> {
        Ok(TopicFilter(r.string_checked(check_topic_filter)?))
    }

    pub fn new(s: &str) -> Result<TopicFilter, DecodeError> {
        TopicFilter::from_string(MqttString::new(s)?)
    }

    pub fn from_bytes(bytes: Bytes) -> Result<TopicFilter, DecodeError> {
        TopicFilter::from_string(MqttString::from_bytes(bytes)?)
    }

    /// The whole filter as sent, including any `$share/group/` prefix.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_mqtt_string(&self) -> &MqttString {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a filter has at least one character. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For `$share/{group}/{filter}`, the group and the filter; `None` for a plain filter.
    pub fn shared(&self) -> Option<(&str, &str)> {
        self.as_str()
            .strip_prefix(SHARED_PREFIX)
            .and_then(|rest| rest.split_once('/'))
    }

    /// The filter that is matched against topic names, without any shared prefix.
    pub fn matching_filter(&self) -> &str {
        self.shared().map_or(self.as_str(), |(_, filter)| filter)
    }
}

impl std::fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The rule of a topic name beyond those of a string: no wildcard ([MQTT-3.3.2-2]).
fn check_topic_name(name: &[u8]) -> Result<(), DecodeError> {
    if contains_any(name, [b'+', b'#']) {
        return Err(DecodeError::WildcardInTopicName);
    }
    Ok(())
}

/// The rules of a topic filter beyond those of a string (see [`TopicFilter`]). On bytes, as
/// all the characters it looks for are ASCII.
fn check_topic_filter(text: &[u8]) -> Result<(), DecodeError> {
    let filter = match text.strip_prefix(SHARED_PREFIX.as_bytes()) {
        Some(rest) => {
            let slash = rest
                .iter()
                .position(|&b| b == b'/')
                .ok_or(DecodeError::InvalidSharedSubscription)?;
            let (group, filter) = (&rest[..slash], &rest[slash + 1..]);
            if group.is_empty() || contains_any(group, [b'+', b'#']) || filter.is_empty() {
                return Err(DecodeError::InvalidSharedSubscription);
            }
            filter
        }
        None => text,
    };
    check_filter_levels(filter)
}

/// Checks wildcard placement level by level (no recursion, no allocation).
///
/// Works on bytes: `/`, `+` and `#` are ASCII, and no byte of a multi-byte UTF-8 character is.
fn check_filter_levels(filter: &[u8]) -> Result<(), DecodeError> {
    if filter.is_empty() {
        return Err(DecodeError::EmptyTopicFilter);
    }
    // Most filters have no wildcard, and one scan of eight bytes at a time settles those.
    if !contains_any(filter, [b'+', b'#']) {
        return Ok(());
    }
    // Judge the wildcards where they stand, in order: a `+` must fill its level, a `#` its
    // level and be last. The first wildcard that fails is in the first level that fails, and
    // that level's error is the multi-level one if it holds a `#` anywhere (one before the
    // `+` would have failed first, so only the rest of the level needs a look).
    let starts_level = |at: usize| at == 0 || filter[at - 1] == b'/';
    let ends_level = |at: usize| at + 1 == filter.len() || filter[at + 1] == b'/';
    for (at, &byte) in filter.iter().enumerate() {
        match byte {
            b'#' if !(starts_level(at) && at + 1 == filter.len()) => {
                return Err(DecodeError::InvalidMultiLevelWildcard);
            }
            b'+' if !(starts_level(at) && ends_level(at)) => {
                let mut level_rest = filter[at + 1..].iter().take_while(|&&b| b != b'/');
                return Err(if level_rest.any(|&b| b == b'#') {
                    DecodeError::InvalidMultiLevelWildcard
                } else {
                    DecodeError::InvalidSingleLevelWildcard
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// The level-by-level rules as first written, kept as the reference the one-pass
/// [`check_filter_levels`] is tested against.
#[cfg(test)]
fn check_filter_levels_by_split(filter: &str) -> Result<(), DecodeError> {
    if filter.is_empty() {
        return Err(DecodeError::EmptyTopicFilter);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "#" if !is_last => return Err(DecodeError::InvalidMultiLevelWildcard),
            "#" | "+" => {}
            _ if level.contains('#') => return Err(DecodeError::InvalidMultiLevelWildcard),
            _ if level.contains('+') => return Err(DecodeError::InvalidSingleLevelWildcard),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_rejects_wildcards() {
        assert_eq!(TopicName::new("a/+"), Err(DecodeError::WildcardInTopicName));
        assert_eq!(TopicName::new("a/#"), Err(DecodeError::WildcardInTopicName));
        assert_eq!(
            TopicName::new("a/b+c"),
            Err(DecodeError::WildcardInTopicName)
        );
        assert!(TopicName::new("a/b c/").is_ok());
        assert!(TopicName::new("$SYS/x").unwrap().is_system());
    }

    #[test]
    fn filter_wildcard_placement() {
        for ok in [
            "#", "+", "a/#", "a/+/b", "+/+", "/", "a//b", "+/#", "$SYS/#",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(TopicFilter::new(""), Err(DecodeError::EmptyTopicFilter));
        assert_eq!(
            TopicFilter::new("a/#/b"),
            Err(DecodeError::InvalidMultiLevelWildcard)
        );
        assert_eq!(
            TopicFilter::new("a#"),
            Err(DecodeError::InvalidMultiLevelWildcard)
        );
        assert_eq!(
            TopicFilter::new("a/b+"),
            Err(DecodeError::InvalidSingleLevelWildcard)
        );
        assert_eq!(
            TopicFilter::new("++"),
            Err(DecodeError::InvalidSingleLevelWildcard)
        );
    }

    #[test]
    fn shared_subscription_forms() {
        let f = TopicFilter::new("$share/g1/a/+").unwrap();
        assert_eq!(f.shared(), Some(("g1", "a/+")));
        assert_eq!(f.matching_filter(), "a/+");
        for bad in [
            "$share/",
            "$share//a",
            "$share/g",
            "$share/g/",
            "$share/g+/a",
            "$share/#/a",
        ] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(DecodeError::InvalidSharedSubscription),
                "{bad}"
            );
        }
        assert_eq!(
            TopicFilter::new("$share/g/a#"),
            Err(DecodeError::InvalidMultiLevelWildcard)
        );
        // `$sharex/...` is an ordinary filter.
        assert!(TopicFilter::new("$sharex/a").unwrap().shared().is_none());
    }

    #[test]
    fn one_pass_filter_check_agrees_with_the_level_by_level_rules() {
        // Every filter of up to five characters over an alphabet with both wildcards, the
        // separator and a multi-byte character.
        let alphabet = ['a', '/', '+', '#', 'é'];
        let mut filters = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..5 {
            frontier = frontier
                .iter()
                .flat_map(|f| alphabet.iter().map(move |c| format!("{f}{c}")))
                .collect();
            filters.extend(frontier.iter().cloned());
        }
        for filter in &filters {
            assert_eq!(
                check_filter_levels(filter.as_bytes()),
                check_filter_levels_by_split(filter),
                "{filter:?}"
            );
        }
    }
}
