//! Validated topic names (what a PUBLISH goes to) and topic filters (what a SUBSCRIBE matches).

use bytes::Bytes;

use super::error::DecodeError;
use super::types::MqttString;

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
        if s.as_bytes().iter().any(|&b| b == b'+' || b == b'#') {
            return Err(DecodeError::WildcardInTopicName);
        }
        Ok(TopicName(s))
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
        let text = s.as_str();
        let filter = match text.strip_prefix(SHARED_PREFIX) {
            Some(rest) => {
                let (group, filter) = rest
                    .split_once('/')
                    .ok_or(DecodeError::InvalidSharedSubscription)?;
                if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
                    return Err(DecodeError::InvalidSharedSubscription);
                }
                filter
            }
            None => text,
        };
        check_filter_levels(filter)?;
        Ok(TopicFilter(s))
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

    /// True when the matching filter has a `+` or `#` level.
    pub fn has_wildcards(&self) -> bool {
        self.matching_filter().contains(['+', '#'])
    }
}

impl std::fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Checks wildcard placement level by level (no recursion, no allocation).
fn check_filter_levels(filter: &str) -> Result<(), DecodeError> {
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
}
