//! Decode and encode errors. Every protocol violation is its own variant, names the normative
//! statement it breaks (MQTT 5.0 numbering, `[MQTT-x.y.z-n]`, or the section `§x.y` where the
//! spec states the rule without a number) and maps to the reason code the broker must send.

use super::reason::ReasonCode;

/// Why a packet could not be decoded. After any of these the connection must be closed: the
/// broker sends [`DecodeError::reason_code`] first when the protocol is MQTT 5 (§4.13).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    // --- Framing (fixed header) ---
    #[error("[MQTT-1.5.5-1] malformed variable byte integer (more than 4 bytes or not minimal)")]
    MalformedVarInt,
    #[error(
        "[MQTT-2.1.2] packet type {packet_type} is reserved or not part of this protocol version"
    )]
    InvalidPacketType { packet_type: u8 },
    #[error(
        "[MQTT-2.1.3-1] reserved fixed header flags {flags:#06b} on packet type {packet_type}"
    )]
    InvalidHeaderFlags { packet_type: u8, flags: u8 },
    #[error("§3.2.2.3.6 packet of {size} bytes exceeds the maximum packet size {max}")]
    PacketTooLarge { size: usize, max: usize },
    #[error("§1.5 packet ended inside a field: its remaining length is too short")]
    Truncated,
    #[error("§2.1.4 {extra} bytes left over after the packet's last field")]
    TrailingBytes { extra: usize },
    #[error(
        "[MQTT-3.1.0-1] the first packet of a connection must be CONNECT, got type {packet_type}"
    )]
    FirstPacketNotConnect { packet_type: u8 },

    // --- Data types ---
    #[error("[MQTT-1.5.4-1] string is not well-formed UTF-8")]
    InvalidUtf8,
    #[error("[MQTT-1.5.4-2] string contains the null character U+0000")]
    NullCharacter,
    #[error("§1.5.4 string of {len} bytes is longer than 65535")]
    StringTooLong { len: usize },

    // --- Topics ---
    #[error("[MQTT-3.3.2-2] topic name contains a wildcard character")]
    WildcardInTopicName,
    #[error("[MQTT-4.7.3-1] topic name is empty")]
    EmptyTopicName,
    #[error("[MQTT-3.3.2-2] empty topic name without a topic alias")]
    EmptyTopicWithoutAlias,
    #[error("[MQTT-4.7.3-1] topic filter is empty")]
    EmptyTopicFilter,
    #[error("[MQTT-4.7.1-1] '#' must be the whole last level of a topic filter")]
    InvalidMultiLevelWildcard,
    #[error("[MQTT-4.7.1-2] '+' must be a whole level of a topic filter")]
    InvalidSingleLevelWildcard,
    #[error("[MQTT-4.8.2-1] shared subscription needs $share/{{non-empty group without / + #}}/{{filter}}")]
    InvalidSharedSubscription,

    // --- CONNECT / CONNACK ---
    #[error("[MQTT-3.1.2-1] protocol name is not MQTT or MQIsdp")]
    InvalidProtocolName,
    #[error("[MQTT-3.1.2-2] protocol level {level} is not supported")]
    UnsupportedProtocolLevel { level: u8 },
    #[error("[MQTT-3.1.2-3] CONNECT reserved flag is set")]
    ConnectReservedFlag,
    #[error("[MQTT-3.1.2-11] will QoS is set without the will flag")]
    WillQoSWithoutWill,
    #[error("[MQTT-3.1.2-12] will QoS is 3")]
    InvalidWillQoS,
    #[error("[MQTT-3.1.2-13] will retain is set without the will flag")]
    WillRetainWithoutWill,
    #[error("[MQTT-3.1.2-22] password flag is set without the user name flag")]
    PasswordWithoutUsername,
    #[error("[MQTT-3.2.2-1] CONNACK reserved flag bits {flags:#010b} are set")]
    InvalidConnAckFlags { flags: u8 },
    #[error("[MQTT-3.2.2-6] CONNACK refuses the connection but says a session is present")]
    SessionPresentOnRefusal,
    #[error("[MQTT-3.2.2-3] CONNACK return code {code} is not defined")]
    InvalidConnectReturnCode { code: u8 },

    // --- PUBLISH and acknowledgements ---
    #[error("[MQTT-3.3.1-4] QoS 3 is not a valid QoS")]
    InvalidQoS,
    #[error("[MQTT-3.3.1-2] DUP is set on a QoS 0 PUBLISH")]
    DupWithQoS0,
    #[error("[MQTT-2.2.1-3] packet identifier is zero")]
    ZeroPacketId,
    #[error("§2.4 reason code {code:#04x} is not allowed in {packet}")]
    InvalidReasonCode { packet: &'static str, code: u8 },

    // --- SUBSCRIBE / UNSUBSCRIBE ---
    #[error("[MQTT-3.8.3-2] SUBSCRIBE has no topic filter")]
    NoSubscribeFilters,
    #[error("[MQTT-3.10.3-2] UNSUBSCRIBE has no topic filter")]
    NoUnsubscribeFilters,
    #[error("[MQTT-3.8.3-5] reserved bits {options:#010b} of subscription options are set")]
    SubscriptionOptionsReserved { options: u8 },
    #[error("§3.8.3.1 subscription QoS 3 is not defined")]
    InvalidSubscriptionQoS,
    #[error("§3.8.3.1 retain handling 3 is not defined")]
    InvalidRetainHandling,
    #[error("[MQTT-3.8.3-4] No Local is set on a shared subscription")]
    NoLocalOnSharedSubscription,
    #[error("§3.9.3 SUBACK return code {code:#04x} is not defined")]
    InvalidSubAckReturnCode { code: u8 },

    // --- Properties (MQTT 5) ---
    #[error("§2.2.2.2 unknown property identifier {id:#04x}")]
    UnknownProperty { id: u32 },
    #[error("§2.2.2.2 property {id:#04x} is not allowed in {packet}")]
    PropertyNotAllowed { id: u8, packet: &'static str },
    #[error("§2.2.2.2 property {id:#04x} appears more than once")]
    DuplicateProperty { id: u8 },
    #[error("§2.2.2.2 property {id:#04x} has the invalid value {value}")]
    InvalidPropertyValue { id: u8, value: u32 },
    #[error("§3.1.2.11.10 authentication data without an authentication method")]
    AuthDataWithoutMethod,
}

impl DecodeError {
    /// The MQTT 5 reason code to send in CONNACK (for a bad CONNECT) or DISCONNECT.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            InvalidProtocolName | UnsupportedProtocolLevel { .. } => {
                ReasonCode::UnsupportedProtocolVersion
            }
            FirstPacketNotConnect { .. }
            | EmptyTopicWithoutAlias
            | InvalidReasonCode { .. }
            | NoSubscribeFilters
            | NoUnsubscribeFilters
            | InvalidRetainHandling
            | InvalidSubscriptionQoS
            | NoLocalOnSharedSubscription
            | DuplicateProperty { .. }
            | InvalidPropertyValue { .. }
            | AuthDataWithoutMethod => ReasonCode::ProtocolError,
            MalformedVarInt
            | InvalidPacketType { .. }
            | InvalidHeaderFlags { .. }
            | Truncated
            | TrailingBytes { .. }
            | InvalidUtf8
            | NullCharacter
            | StringTooLong { .. }
            | WildcardInTopicName
            | EmptyTopicName
            | EmptyTopicFilter
            | InvalidMultiLevelWildcard
            | InvalidSingleLevelWildcard
            | InvalidSharedSubscription
            | ConnectReservedFlag
            | WillQoSWithoutWill
            | InvalidWillQoS
            | WillRetainWithoutWill
            | PasswordWithoutUsername
            | InvalidConnAckFlags { .. }
            | SessionPresentOnRefusal
            | InvalidConnectReturnCode { .. }
            | InvalidQoS
            | DupWithQoS0
            | ZeroPacketId
            | SubscriptionOptionsReserved { .. }
            | InvalidSubAckReturnCode { .. }
            | UnknownProperty { .. }
            | PropertyNotAllowed { .. } => ReasonCode::MalformedPacket,
        }
    }
}

/// Why a packet could not be encoded. The packet is left unwritten: no partial output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("output buffer of {available} bytes is too small for a {needed}-byte packet")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("packet of {size} bytes is larger than MQTT allows ({max})")]
    PacketTooLarge { size: usize, max: usize },
    #[error("{field} is {len} bytes, more than the 65535 a two-byte length allows")]
    FieldTooLong { field: &'static str, len: usize },
    #[error("{field} {value} is larger than a variable byte integer holds (268435455)")]
    ValueTooLarge { field: &'static str, value: u32 },
    #[error("{packet} does not exist in this protocol version")]
    NotInProtocol { packet: &'static str },
}
