//! MQTT 5 topic aliases (§3.3.2.3.4), one table per direction of a connection.

use std::collections::BTreeMap;

use crate::codec::TopicName;

/// Aliases the client set up for the topics it publishes to.
#[derive(Debug, Default)]
pub struct InboundAliases {
    /// Our Topic Alias Maximum: aliases 1 to this are accepted.
    max: u16,
    topics: BTreeMap<u16, TopicName>,
}

/// Why an inbound alias cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasError {
    /// 0 or above our Topic Alias Maximum ([MQTT-3.3.2-9]): DISCONNECT 0x94.
    OutOfRange,
    /// An empty topic with an alias never set up: a Protocol Error (§3.3.2.3.4).
    Unknown,
}

impl InboundAliases {
    pub fn new(max: u16) -> InboundAliases {
        InboundAliases {
            max,
            topics: BTreeMap::new(),
        }
    }

    /// The topic a PUBLISH goes to: its own topic (remembered under the alias, if any), or
    /// the topic its alias stands for when the topic is empty.
    pub fn resolve(
        &mut self,
        topic: TopicName,
        alias: Option<u16>,
    ) -> Result<TopicName, AliasError> {
        let Some(alias) = alias else {
            return Ok(topic);
        };
        if alias == 0 || alias > self.max {
            return Err(AliasError::OutOfRange);
        }
        if topic.is_empty() {
            return self.topics.get(&alias).cloned().ok_or(AliasError::Unknown);
        }
        self.topics.insert(alias, topic.clone());
        Ok(topic)
    }
}

/// Aliases we set up for the topics we send to the client.
#[derive(Debug, Default)]
pub struct OutboundAliases {
    /// The client's Topic Alias Maximum; 0 means no aliases.
    max: u16,
    aliases: BTreeMap<TopicName, u16>,
}

impl OutboundAliases {
    pub fn new(max: u16) -> OutboundAliases {
        OutboundAliases {
            max,
            aliases: BTreeMap::new(),
        }
    }

    /// The alias to send with `topic`, and whether the topic itself must be sent too (the
    /// first time). Once all aliases are taken, new topics go without one: the first topics
    /// a client receives are usually the ones it keeps receiving.
    pub fn alias_for(&mut self, topic: &TopicName) -> Option<(u16, bool)> {
        if let Some(&alias) = self.aliases.get(topic) {
            return Some((alias, false));
        }
        let next = u16::try_from(self.aliases.len() + 1).ok()?;
        if next > self.max {
            return None;
        }
        self.aliases.insert(topic.clone(), next);
        Some((next, true))
    }

    /// Takes back the alias just given to `topic` when its publish was not sent after all.
    pub fn forget(&mut self, topic: &TopicName) {
        self.aliases.remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    #[test]
    fn inbound_alias_is_set_then_used() {
        let mut aliases = InboundAliases::new(2);
        assert_eq!(aliases.resolve(topic("a"), Some(1)), Ok(topic("a")));
        assert_eq!(
            aliases.resolve(TopicName::default(), Some(1)),
            Ok(topic("a"))
        );
        assert_eq!(
            aliases.resolve(topic("b"), Some(1)),
            Ok(topic("b")),
            "reassigned"
        );
        assert_eq!(
            aliases.resolve(TopicName::default(), Some(1)),
            Ok(topic("b"))
        );
        assert_eq!(
            aliases.resolve(TopicName::default(), Some(2)),
            Err(AliasError::Unknown)
        );
        assert_eq!(
            aliases.resolve(topic("c"), Some(3)),
            Err(AliasError::OutOfRange)
        );
        assert_eq!(
            aliases.resolve(topic("c"), Some(0)),
            Err(AliasError::OutOfRange)
        );
    }

    #[test]
    fn outbound_aliases_fill_up_to_the_clients_maximum() {
        let mut aliases = OutboundAliases::new(1);
        assert_eq!(aliases.alias_for(&topic("a")), Some((1, true)));
        assert_eq!(aliases.alias_for(&topic("a")), Some((1, false)));
        assert_eq!(aliases.alias_for(&topic("b")), None);
        assert_eq!(OutboundAliases::new(0).alias_for(&topic("a")), None);
    }
}
