//! The MQTT 3.1, 3.1.1 and 5.0 packet codec: bytes in, packets out, and back.
//!
//! Pure: no I/O, no clock, no async. [`Decoder`] frames packets out of a byte buffer and
//! validates them by the rules of the spec; [`Packet::encode`] writes them. Strings and
//! payloads share the buffer they were read from (`bytes::Bytes`), so decoding copies nothing.
//!
//! Validity is mostly in the types: a [`PacketId`] is never 0, a QoS 0 publish has no packet
//! id ([`QosPid`]), a [`TopicName`] has no wildcards, a [`TopicFilter`] has them only where
//! they may stand, and each packet has its own property struct holding only the properties
//! it may carry. Errors name the spec statement they enforce and the reason code to send.

mod decoder;
mod error;
pub mod packet;
pub mod properties;
mod reason;
mod serde_impls;
mod topic;
mod types;
mod wire;

#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;
#[cfg(test)]
mod tests;

pub use decoder::{Decoder, PACKET_SIZE_LIMIT};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, FixedHeader, LastWill, Packet, PacketType, PubReply,
    Publish, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
pub use reason::{ReasonCode, ReasonContext};
pub use topic::{TopicFilter, TopicName, SHARED_PREFIX};
pub use types::{MqttString, PacketId, Protocol, QoS, QosPid, UserProperty, FIELD_LEN_MAX};
pub use wire::VAR_INT_MAX;
