//! MQTT 5 reason codes (§2.4), which packets may carry which, and the MQTT 3 equivalents.

use super::error::DecodeError;

/// Generates the reason code enum with its byte values and a lookup from a byte.
macro_rules! reason_codes {
    ($($name:ident = $value:literal,)*) => {
        /// A reason code. MQTT 5 carries it in most acknowledgements; for MQTT 3 the codec maps
        /// it to the CONNACK return code or the SUBACK return code that protocol has.
        ///
        /// The value 0x00 has several names in the spec (Success, Normal disconnection, Granted
        /// QoS 0); they are one variant here, with the other names as constants.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum ReasonCode {
            $($name = $value,)*
        }

        impl ReasonCode {
            /// Every reason code the spec defines, in byte order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$name,)*];

            /// Looks up a byte; `None` for a value the spec does not define.
            pub fn from_u8(value: u8) -> Option<ReasonCode> {
                match value {
                    $($value => Some(ReasonCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

/// The packets that carry a reason code, each with its own list of allowed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonContext {
    ConnAck,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    SubAck,
    UnsubAck,
    Disconnect,
    Auth,
}

impl Default for ReasonCode {
    /// Success, which is also what a packet means when it leaves its reason code out.
    fn default() -> ReasonCode {
        ReasonCode::Success
    }
}

impl ReasonContext {
    /// The packet's name, for error messages.
    pub fn packet_name(self) -> &'static str {
        match self {
            ReasonContext::ConnAck => "CONNACK",
            ReasonContext::PubAck => "PUBACK",
            ReasonContext::PubRec => "PUBREC",
            ReasonContext::PubRel => "PUBREL",
            ReasonContext::PubComp => "PUBCOMP",
            ReasonContext::SubAck => "SUBACK",
            ReasonContext::UnsubAck => "UNSUBACK",
            ReasonContext::Disconnect => "DISCONNECT",
            ReasonContext::Auth => "AUTH",
        }
    }
}

impl ReasonCode {
    /// Reads a reason code byte and checks that `context` allows it.
    pub fn decode(code: u8, context: ReasonContext) -> Result<ReasonCode, DecodeError> {
        ReasonCode::from_u8(code)
            .filter(|c| c.is_valid_for(context))
            .ok_or(DecodeError::InvalidReasonCode {
                packet: context.packet_name(),
                code,
            })
    }

    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::Success;
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode::Success;

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Values of 0x80 and above report a failure (§2.4).
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// True when the spec lists this code for the packet (tables of §3.2.2.2, §3.4.2.1,
    /// §3.5.2.1, §3.6.2.1, §3.7.2.1, §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1).
    pub fn is_valid_for(self, context: ReasonContext) -> bool {
        let valid = match context {
            ReasonContext::ConnAck => VALID_IN_CONN_ACK,
            ReasonContext::PubAck | ReasonContext::PubRec => VALID_IN_PUB_ACK_PUB_REC,
            ReasonContext::PubRel | ReasonContext::PubComp => VALID_IN_PUB_REL_PUB_COMP,
            ReasonContext::SubAck => VALID_IN_SUB_ACK,
            ReasonContext::UnsubAck => VALID_IN_UNSUB_ACK,
            ReasonContext::Disconnect => VALID_IN_DISCONNECT,
            ReasonContext::Auth => VALID_IN_AUTH,
        };
        valid.contains(&self)
    }

    /// The MQTT 3 CONNACK return code (§3.2.2.3 of 3.1.1) closest to this reason code.
    pub fn to_v3_connack(self) -> u8 {
        use ReasonCode::*;
        match self {
            Success => 0,
            UnsupportedProtocolVersion => 1,
            ClientIdentifierNotValid => 2,
            BadUserNameOrPassword | BadAuthenticationMethod => 4,
            NotAuthorized | Banned => 5,
            // Every other refusal means "not now": the nearest 3.1.1 code is Server unavailable.
            _ => 3,
        }
    }

    /// The reason code for an MQTT 3 CONNACK return code; `None` for values above 5.
    pub fn from_v3_connack(code: u8) -> Option<ReasonCode> {
        use ReasonCode::*;
        Some(match code {
            0 => Success,
            1 => UnsupportedProtocolVersion,
            2 => ClientIdentifierNotValid,
            3 => ServerUnavailable,
            4 => BadUserNameOrPassword,
            5 => NotAuthorized,
            _ => return None,
        })
    }

    /// The MQTT 3 SUBACK return code: the granted QoS, or 0x80 for any failure.
    pub fn to_v3_suback(self) -> u8 {
        match self {
            ReasonCode::Success | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2 => self.as_u8(),
            _ => 0x80,
        }
    }

    /// The reason code for an MQTT 3 SUBACK return code (0, 1, 2 or 0x80).
    pub fn from_v3_suback(code: u8) -> Option<ReasonCode> {
        match code {
            0x00 => Some(ReasonCode::Success),
            0x01 => Some(ReasonCode::GrantedQoS1),
            0x02 => Some(ReasonCode::GrantedQoS2),
            0x80 => Some(ReasonCode::UnspecifiedError),
            _ => None,
        }
    }
}

/// The reason codes the spec allows in ConnAck.
const VALID_IN_CONN_ACK: &[ReasonCode] = &[
    ReasonCode::Success,
    ReasonCode::UnspecifiedError,
    ReasonCode::MalformedPacket,
    ReasonCode::ProtocolError,
    ReasonCode::ImplementationSpecificError,
    ReasonCode::UnsupportedProtocolVersion,
    ReasonCode::ClientIdentifierNotValid,
    ReasonCode::BadUserNameOrPassword,
    ReasonCode::NotAuthorized,
    ReasonCode::ServerUnavailable,
    ReasonCode::ServerBusy,
    ReasonCode::Banned,
    ReasonCode::BadAuthenticationMethod,
    ReasonCode::TopicNameInvalid,
    ReasonCode::PacketTooLarge,
    ReasonCode::QuotaExceeded,
    ReasonCode::PayloadFormatInvalid,
    ReasonCode::RetainNotSupported,
    ReasonCode::QoSNotSupported,
    ReasonCode::UseAnotherServer,
    ReasonCode::ServerMoved,
    ReasonCode::ConnectionRateExceeded,
];

/// The reason codes the spec allows in PubAck and PubRec.
const VALID_IN_PUB_ACK_PUB_REC: &[ReasonCode] = &[
    ReasonCode::Success,
    ReasonCode::NoMatchingSubscribers,
    ReasonCode::UnspecifiedError,
    ReasonCode::ImplementationSpecificError,
    ReasonCode::NotAuthorized,
    ReasonCode::TopicNameInvalid,
    ReasonCode::PacketIdentifierInUse,
    ReasonCode::QuotaExceeded,
    ReasonCode::PayloadFormatInvalid,
];

/// The reason codes the spec allows in PubRel and PubComp.
const VALID_IN_PUB_REL_PUB_COMP: &[ReasonCode] =
    &[ReasonCode::Success, ReasonCode::PacketIdentifierNotFound];

/// The reason codes the spec allows in SubAck.
const VALID_IN_SUB_ACK: &[ReasonCode] = &[
    ReasonCode::Success,
    ReasonCode::GrantedQoS1,
    ReasonCode::GrantedQoS2,
    ReasonCode::UnspecifiedError,
    ReasonCode::ImplementationSpecificError,
    ReasonCode::NotAuthorized,
    ReasonCode::TopicFilterInvalid,
    ReasonCode::PacketIdentifierInUse,
    ReasonCode::QuotaExceeded,
    ReasonCode::SharedSubscriptionsNotSupported,
    ReasonCode::SubscriptionIdentifiersNotSupported,
    ReasonCode::WildcardSubscriptionsNotSupported,
];

/// The reason codes the spec allows in UnsubAck.
const VALID_IN_UNSUB_ACK: &[ReasonCode] = &[
    ReasonCode::Success,
    ReasonCode::NoSubscriptionExisted,
    ReasonCode::UnspecifiedError,
    ReasonCode::ImplementationSpecificError,
    ReasonCode::NotAuthorized,
    ReasonCode::TopicFilterInvalid,
    ReasonCode::PacketIdentifierInUse,
];

/// The reason codes the spec allows in Disconnect.
const VALID_IN_DISCONNECT: &[ReasonCode] = &[
    ReasonCode::Success,
    ReasonCode::DisconnectWithWillMessage,
    ReasonCode::UnspecifiedError,
    ReasonCode::MalformedPacket,
    ReasonCode::ProtocolError,
    ReasonCode::ImplementationSpecificError,
    ReasonCode::NotAuthorized,
    ReasonCode::ServerBusy,
    ReasonCode::ServerShuttingDown,
    ReasonCode::KeepAliveTimeout,
    ReasonCode::SessionTakenOver,
    ReasonCode::TopicFilterInvalid,
    ReasonCode::TopicNameInvalid,
    ReasonCode::ReceiveMaximumExceeded,
    ReasonCode::TopicAliasInvalid,
    ReasonCode::PacketTooLarge,
    ReasonCode::MessageRateTooHigh,
    ReasonCode::QuotaExceeded,
    ReasonCode::AdministrativeAction,
    ReasonCode::PayloadFormatInvalid,
    ReasonCode::RetainNotSupported,
    ReasonCode::QoSNotSupported,
    ReasonCode::UseAnotherServer,
    ReasonCode::ServerMoved,
    ReasonCode::SharedSubscriptionsNotSupported,
    ReasonCode::ConnectionRateExceeded,
    ReasonCode::MaximumConnectTime,
    ReasonCode::SubscriptionIdentifiersNotSupported,
    ReasonCode::WildcardSubscriptionsNotSupported,
];

/// The reason codes the spec allows in Auth.
const VALID_IN_AUTH: &[ReasonCode] = &[
    ReasonCode::Success,
    ReasonCode::ContinueAuthentication,
    ReasonCode::ReAuthenticate,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_byte() {
        for &code in ReasonCode::ALL {
            assert_eq!(ReasonCode::from_u8(code.as_u8()), Some(code));
        }
        assert_eq!(ReasonCode::from_u8(0x03), None);
        assert_eq!(ReasonCode::from_u8(0xA3), None);
    }

    #[test]
    fn v3_connack_codes_round_trip() {
        for code in 0..=5u8 {
            let reason = ReasonCode::from_v3_connack(code).unwrap();
            assert_eq!(reason.to_v3_connack(), code);
            assert!(reason.is_valid_for(ReasonContext::ConnAck));
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
    }

    #[test]
    fn v3_suback_failure_is_0x80() {
        assert_eq!(ReasonCode::NotAuthorized.to_v3_suback(), 0x80);
        assert_eq!(ReasonCode::GrantedQoS2.to_v3_suback(), 2);
    }
}
