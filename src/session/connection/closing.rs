//! Ending a connection: a refused CONNECT, a server DISCONNECT with its reason, closing.

use crate::broker::Broker;
use crate::codec::{
    ConnAck, ConnAckProperties, Disconnect, MqttString, Packet, ReasonCode, ReasonContext,
};

use super::{explain, Phase, Session};

impl Session {
    /// Refuses a CONNECT with this reason and closes.
    pub(super) fn refuse(&mut self, reason: ReasonCode) {
        self.refuse_because(reason, explain(reason));
    }

    /// Refuses a CONNECT with this reason and, in MQTT 5, says why in a reason string (which
    /// CONNACK may carry whatever the client's Request Problem Information, [MQTT-3.1.2-29]).
    pub(super) fn refuse_because(&mut self, reason: ReasonCode, why: &str) {
        let mut properties = ConnAckProperties::default();
        if self.protocol.is_v5() && !why.is_empty() {
            properties.reason_string = MqttString::new(why).ok();
        }
        self.out.push(Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: reason,
            properties,
        }));
        self.close();
    }

    /// Ends the connection for a protocol violation: DISCONNECT with the reason (MQTT 5),
    /// then close. The will is published, as for any abnormal end.
    pub(super) fn fail(&mut self, reason: ReasonCode, broker: &mut Broker, now_ms: u64) {
        self.fail_because(reason, explain(reason), broker, now_ms);
    }

    /// [`Session::fail`] with a reason string that says more than the reason code.
    pub(super) fn fail_because(
        &mut self,
        reason: ReasonCode,
        why: &str,
        broker: &mut Broker,
        now_ms: u64,
    ) {
        // No DISCONNECT before a CONNACK ([MQTT-3.14.0-1]): a client that errs while its
        // CONNACK waits for a commit just sees the connection close.
        if self.protocol.is_v5() && self.connack_sent {
            let disconnect = self.disconnect_packet(reason, why);
            self.out.push(Packet::Disconnect(disconnect));
        }
        self.on_closed(broker, now_ms);
    }

    /// A server DISCONNECT with a reason string, left out if the packet would then exceed
    /// the client's Maximum Packet Size ([MQTT-3.14.2-3]). DISCONNECT may carry one whatever
    /// the client's Request Problem Information ([MQTT-3.1.2-29]).
    pub(super) fn disconnect_packet(&self, reason: ReasonCode, why: &str) -> Disconnect {
        let reason = disconnect_reason(reason);
        let mut disconnect = Disconnect::new(reason);
        if why.is_empty() {
            return disconnect;
        }
        disconnect.properties.reason_string = MqttString::new(why).ok();
        let packet = Packet::Disconnect(disconnect);
        let fits = match self.client_packet_size_max {
            Some(max) => packet
                .encoded_len(self.protocol)
                .is_ok_and(|len| len <= max as usize),
            None => true,
        };
        match packet {
            Packet::Disconnect(disconnect) if fits => disconnect,
            _ => Disconnect::new(reason),
        }
    }

    pub(super) fn close(&mut self) {
        self.phase = Phase::Closing;
    }
}

/// The code a server DISCONNECT carries for `reason`. Some reasons the broker ends a
/// connection for exist only in CONNACK: `0x88 Server unavailable` (a node without quorum,
/// G5) is not a DISCONNECT reason code (MQTT 5 §3.14.2.1), so a connected client is told
/// `0x9C Use another server`, which says what it should do; anything else unknown becomes
/// `0x80 Unspecified error`. (Keel's own decoder refuses a DISCONNECT carrying 0x88, as strict
/// clients do: found by `jepsen/`.)
fn disconnect_reason(reason: ReasonCode) -> ReasonCode {
    if reason.is_valid_for(ReasonContext::Disconnect) {
        return reason;
    }
    match reason {
        ReasonCode::ServerUnavailable => ReasonCode::UseAnotherServer,
        _ => ReasonCode::UnspecifiedError,
    }
}
