//! CONNECT (§3.1): the first packet of a connection, which also fixes its protocol version.

use bytes::{BufMut, Bytes};

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, ConnectProperties, WillProperties,
};
use crate::codec::topic::TopicName;
use crate::codec::types::{MqttString, Protocol, QoS};
use crate::codec::wire::{self, Reader};

mod flag {
    pub const RESERVED: u8 = 0b0000_0001;
    pub const CLEAN_START: u8 = 0b0000_0010;
    pub const WILL: u8 = 0b0000_0100;
    pub const WILL_QOS_SHIFT: u8 = 3;
    pub const WILL_QOS: u8 = 0b0001_1000;
    pub const WILL_RETAIN: u8 = 0b0010_0000;
    pub const PASSWORD: u8 = 0b0100_0000;
    pub const USERNAME: u8 = 0b1000_0000;
}

/// A CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The version the client speaks; the connection keeps it for every later packet.
    pub protocol: Protocol,
    /// MQTT 5 Clean Start, or MQTT 3 Clean Session.
    pub clean_start: bool,
    /// Seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    pub properties: ConnectProperties,
    /// May be empty: the server then assigns one (MQTT 5) or refuses it with a persistent
    /// session (MQTT 3).
    pub client_id: MqttString,
    pub will: Option<LastWill>,
    pub username: Option<MqttString>,
    pub password: Option<Bytes>,
}

/// The will message a CONNECT registers (§3.1.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: TopicName,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: WillProperties,
}

impl Connect {
    /// Reads only the protocol name and level at the front of a CONNECT body, so that the
    /// connection knows its version even when the rest of the packet is bad.
    /// `Ok(None)` when the body is too short to hold them.
    pub fn peek_protocol(body: &[u8]) -> Result<Option<Protocol>, DecodeError> {
        let Some(&[high, low]) = body.get(..2) else {
            return Ok(None);
        };
        let name_end = 2 + usize::from(u16::from_be_bytes([high, low]));
        match (body.get(2..name_end), body.get(name_end)) {
            (Some(name), Some(&level)) => protocol_of(name, level).map(Some),
            _ => Ok(None),
        }
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Connect, DecodeError> {
        let protocol = read_protocol(r)?;
        let flags = r.u8()?;
        if flags & flag::RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let has_will = flags & flag::WILL != 0;
        let will_qos_bits = (flags & flag::WILL_QOS) >> flag::WILL_QOS_SHIFT;
        let will_retain = flags & flag::WILL_RETAIN != 0;
        if !has_will && will_qos_bits != 0 {
            return Err(DecodeError::WillQoSWithoutWill);
        }
        if !has_will && will_retain {
            return Err(DecodeError::WillRetainWithoutWill);
        }
        let will_qos = QoS::from_bits(will_qos_bits).ok_or(DecodeError::InvalidWillQoS)?;
        let has_username = flags & flag::USERNAME != 0;
        let has_password = flags & flag::PASSWORD != 0;
        // MQTT 5 allows a password without a user name (§3.1.2.9); MQTT 3 does not.
        if !protocol.is_v5() && has_password && !has_username {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16()?;
        let properties = if protocol.is_v5() {
            read_properties(r, "CONNECT")?
        } else {
            ConnectProperties::default()
        };
        let client_id = r.string()?;
        let will = if has_will {
            let properties = if protocol.is_v5() {
                read_properties(r, "will properties")?
            } else {
                WillProperties::default()
            };
            let topic = TopicName::read(r)?;
            if topic.is_empty() {
                return Err(DecodeError::EmptyTopicName);
            }
            Some(LastWill {
                topic,
                payload: r.binary()?,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.string()?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary()?)
        } else {
            None
        };
        Ok(Connect {
            protocol,
            clean_start: flags & flag::CLEAN_START != 0,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
        let v5 = self.protocol.is_v5();
        // Protocol name, level, flags, keep-alive.
        let mut len = 2 + self.protocol.name().len() + 1 + 1 + 2;
        if v5 {
            len += properties_wire_len(&self.properties)?;
        }
        len += wire::field_len("client identifier", self.client_id.len())?;
        if let Some(will) = &self.will {
            if v5 {
                len += properties_wire_len(&will.properties)?;
            }
            len += wire::field_len("will topic", will.topic.len())?;
            len += wire::field_len("will payload", will.payload.len())?;
        }
        if let Some(username) = &self.username {
            len += wire::field_len("user name", username.len())?;
        }
        if let Some(password) = &self.password {
            len += wire::field_len("password", password.len())?;
        }
        Ok(len)
    }

    pub(crate) fn write_body(&self, buf: &mut impl BufMut) {
        let v5 = self.protocol.is_v5();
        wire::put_field(buf, self.protocol.name().as_bytes());
        buf.put_u8(self.protocol.level());
        let mut flags = 0;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << flag::WILL_QOS_SHIFT);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        buf.put_u8(flags);
        buf.put_u16(self.keep_alive);
        if v5 {
            put_properties(buf, &self.properties);
        }
        wire::put_field(buf, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            if v5 {
                put_properties(buf, &will.properties);
            }
            wire::put_field(buf, will.topic.as_bytes());
            wire::put_field(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            wire::put_field(buf, username.as_bytes());
        }
        if let Some(password) = &self.password {
            wire::put_field(buf, password);
        }
    }
}

/// Reads the protocol name and level (§3.1.2.1, §3.1.2.2).
fn read_protocol(r: &mut Reader) -> Result<Protocol, DecodeError> {
    // The name is only compared, so it is borrowed rather than taken as a shared `Bytes`; the
    // borrow ends before the level is read, so a known name is kept as its static twin.
    let name: &'static [u8] = match r.binary_slice()? {
        b"MQTT" => b"MQTT",
        b"MQIsdp" => b"MQIsdp",
        _ => b"",
    };
    let level = r.u8()?;
    protocol_of(name, level)
}

fn protocol_of(name: &[u8], level: u8) -> Result<Protocol, DecodeError> {
    match (name, level) {
        (b"MQTT", 4) => Ok(Protocol::V3_1_1),
        (b"MQTT", 5) => Ok(Protocol::V5),
        (b"MQIsdp", 3) => Ok(Protocol::V3_1),
        (b"MQTT" | b"MQIsdp", level) => Err(DecodeError::UnsupportedProtocolLevel { level }),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}
