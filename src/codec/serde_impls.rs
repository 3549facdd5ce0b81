//! Serde for the validated string types, so durable state (the Raft log, snapshots) can hold
//! them: written as plain strings, and checked by the same rules as a packet field when read
//! back, so corrupt bytes give an error and never a string that breaks its type's rules.
//!
//! The packet codec does not use serde; nothing here is on its path.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::error::DecodeError;
use super::topic::{TopicFilter, TopicName};
use super::types::MqttString;

impl Serialize for MqttString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MqttString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(MqttStringVisitor)
    }
}

/// Reads a string and checks it as an MQTT string (§1.5.4).
struct MqttStringVisitor;

impl Visitor<'_> for MqttStringVisitor {
    type Value = MqttString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an MQTT string: UTF-8 without U+0000, at most 65,535 bytes")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<MqttString, E> {
        MqttString::new(s).map_err(invalid::<E>)
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<MqttString, E> {
        // An owned string becomes the buffer itself, without a copy.
        MqttString::from_bytes(Bytes::from(s.into_bytes())).map_err(invalid::<E>)
    }
}

impl Serialize for TopicName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_mqtt_string().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TopicName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = MqttString::deserialize(deserializer)?;
        TopicName::from_string(s).map_err(invalid::<D::Error>)
    }
}

impl Serialize for TopicFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_mqtt_string().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TopicFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = MqttString::deserialize(deserializer)?;
        TopicFilter::from_string(s).map_err(invalid::<D::Error>)
    }
}

/// The serde error for a value that breaks its type's rules, naming the rule.
fn invalid<E: de::Error>(error: DecodeError) -> E {
    E::custom(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `value` with postcard and reads it back as `T`.
    fn reread<T: for<'de> Deserialize<'de>>(value: &impl Serialize) -> Result<T, postcard::Error> {
        let bytes = postcard::to_stdvec(value).expect("postcard writes any string");
        postcard::from_bytes(&bytes)
    }

    #[test]
    fn strings_round_trip_as_plain_strings() {
        let s = MqttString::new("héllo").unwrap();
        assert_eq!(
            postcard::to_stdvec(&s).unwrap(),
            postcard::to_stdvec("héllo").unwrap()
        );
        assert_eq!(reread::<MqttString>(&s).unwrap(), s);
        let topic = TopicName::new("a/b").unwrap();
        assert_eq!(reread::<TopicName>(&topic).unwrap(), topic);
        let filter = TopicFilter::new("$share/g/a/+").unwrap();
        assert_eq!(reread::<TopicFilter>(&filter).unwrap(), filter);
    }

    #[test]
    fn strings_breaking_their_rules_do_not_read_back() {
        assert!(reread::<MqttString>(&"a\0b").is_err());
        assert!(reread::<MqttString>(&"x".repeat(65_536)).is_err());
        assert!(reread::<TopicName>(&"a/+").is_err());
        assert!(reread::<TopicName>(&"#").is_err());
        for bad in ["", "a/#/b", "a+", "$share/g", "$share//a", "$share/g+/a"] {
            assert!(reread::<TopicFilter>(&bad).is_err(), "{bad:?}");
        }
        // Bytes that are not UTF-8 are refused by postcard before the rules are checked.
        let mut not_utf8 = postcard::to_stdvec("ab").unwrap();
        not_utf8[1] = 0xff;
        assert!(postcard::from_bytes::<MqttString>(&not_utf8).is_err());
    }
}
