//! Codec speed: Keel against mqttbytes (the codec of the rumqtt project) on the same packets.
//!
//! Each case is one criterion group per direction, `decode/<case>` and `encode/<case>`, each
//! with a `keel` and an `mqttbytes` function, so that every comparison is between two
//! measurements of the same run. Before anything is timed, [`Case::verify`] asserts that both
//! codecs decode the case's bytes to the packet the case describes, that each codec's own
//! encoding decodes back to that packet, and that the two encodings have the same length: both
//! sides do the same work.
//!
//! - decode: the packet's bytes in a `BytesMut` → a fully decoded packet value. The buffers
//!   are built outside the timed part, and the decoded packets and the emptied buffers are
//!   dropped outside it too, the same for both sides (see [`time_decode`]).
//! - encode: a packet value → its bytes, appended to one reused `BytesMut` cleared first.
//!
//! Run with `cargo bench --bench codec`; `docs/codec-benchmark.md` has the results and how
//! they were taken. `KEEL_BENCH_MQTTBYTES_FIRST=1` measures mqttbytes before Keel in every
//! group, to check that the order of measurement does not favour either side.

use std::hint::black_box;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::measurement::{Measurement, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use keel::codec::{
    ConnectProperties, Decoder, LastWill, MqttString, Packet, PacketId, Protocol, Publish,
    PublishProperties, QoS, QosPid, RetainHandling, Subscribe, SubscribeProperties,
    SubscriptionOptions, TopicFilter, TopicName, WillProperties, PACKET_SIZE_LIMIT,
};
use mqttbytes::{v4, v5};

/// The packet size limit both decoders are given: large enough for every case.
const PACKET_SIZE_MAX: usize = 1 << 20;
const _: () = assert!(PACKET_SIZE_MAX <= PACKET_SIZE_LIMIT);

const TOPIC: &str = "sensors/building-7/floor-3/room-12/temperature";
const CLIENT_ID: &str = "keel-bench-client-0001";
const USERNAME: &str = "bench-user";
const PASSWORD: &str = "correct-horse-battery-staple";
const WILL_TOPIC: &str = "clients/keel-bench-client-0001/status";
const WILL_PAYLOAD: &[u8] = b"offline";
const RESPONSE_TOPIC: &str = "replies/keel-bench-client-0001";
const CONTENT_TYPE: &str = "application/json";
const CORRELATION_DATA: &[u8] = b"req-000000000042";
const USER_PROPERTIES: [(&str, &str); 2] = [
    ("trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ("origin", "bench"),
];
/// The SUBSCRIBE filters with their maximum QoS.
const FILTERS: [(&str, QoS); 4] = [
    ("sensors/+/temperature", QoS::AtLeastOnce),
    ("alerts/#", QoS::ExactlyOnce),
    ("devices/keel-bench-client-0001/commands", QoS::AtLeastOnce),
    ("$SYS/broker/clients/connected", QoS::AtMostOnce),
];

/// One packet as each codec represents it, and the bytes both decode.
struct Case {
    name: String,
    protocol: Protocol,
    keel: Packet,
    mqttbytes: MqttBytes,
    /// Keel's encoding of the packet; the input of both decode benchmarks.
    wire: Bytes,
    /// True when both codecs must produce the very same bytes. MQTT 5 properties may come in
    /// any order and the two codecs write them in different orders, so cases with properties
    /// only compare lengths.
    same_bytes: bool,
}

/// An mqttbytes packet of either protocol module.
// Unboxed like Keel's `Packet`, so that encoding reaches the packet the same way on both sides.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
enum MqttBytes {
    V4(v4::Packet),
    V5(v5::Packet),
}

impl MqttBytes {
    fn decode_like(&self, buf: &mut BytesMut) -> Result<MqttBytes, mqttbytes::Error> {
        match self {
            MqttBytes::V4(_) => v4::read(buf, PACKET_SIZE_MAX).map(MqttBytes::V4),
            MqttBytes::V5(_) => v5::read(buf, PACKET_SIZE_MAX).map(MqttBytes::V5),
        }
    }

    /// mqttbytes 0.6 has no `Packet::write`, so this dispatch stands in for the one inside
    /// Keel's `Packet::encode`.
    fn encode(&self, buf: &mut BytesMut) -> Result<usize, mqttbytes::Error> {
        match self {
            MqttBytes::V4(v4::Packet::Publish(p)) => p.write(buf),
            MqttBytes::V4(v4::Packet::Connect(p)) => p.write(buf),
            MqttBytes::V4(v4::Packet::Subscribe(p)) => p.write(buf),
            MqttBytes::V5(v5::Packet::Publish(p)) => p.write(buf),
            MqttBytes::V5(v5::Packet::Connect(p)) => p.write(buf),
            MqttBytes::V5(v5::Packet::Subscribe(p)) => p.write(buf),
            other => unreachable!("no benchmark case uses {other:?}"),
        }
    }
}

impl Case {
    fn new(
        name: String,
        protocol: Protocol,
        keel: Packet,
        mqttbytes: MqttBytes,
        same_bytes: bool,
    ) -> Case {
        let mut wire = BytesMut::new();
        keel.encode(protocol, &mut wire)
            .expect("a benchmark packet encodes");
        Case {
            name,
            protocol,
            keel,
            mqttbytes,
            wire: wire.freeze(),
            same_bytes,
        }
    }

    fn keel_decoder(&self) -> Decoder {
        Decoder::with_protocol(self.protocol, PACKET_SIZE_MAX)
    }

    /// Asserts that the two sides of the case do equivalent work (see the module docs).
    fn verify(&self) {
        // Both decode the same bytes to the packet the case describes, consuming all of them.
        let mut buf = BytesMut::from(&self.wire[..]);
        let keel = self.keel_decoder().decode(&mut buf);
        assert!(
            keel == Ok(Some(self.keel.clone())),
            "{}: keel decodes the bytes",
            self.name
        );
        assert!(
            buf.is_empty(),
            "{}: keel consumes the whole packet",
            self.name
        );
        let mut buf = BytesMut::from(&self.wire[..]);
        let mqttbytes = self.mqttbytes.decode_like(&mut buf);
        assert!(
            mqttbytes.as_ref() == Ok(&self.mqttbytes),
            "{}: mqttbytes decodes the bytes: {mqttbytes:?}",
            self.name
        );
        assert!(
            buf.is_empty(),
            "{}: mqttbytes consumes the whole packet",
            self.name
        );

        // Each side's encoding decodes back, by itself and by the other side.
        let mut keel_wire = BytesMut::new();
        let keel_len = self.keel.encode(self.protocol, &mut keel_wire).unwrap();
        assert!(
            keel_len == keel_wire.len() && keel_wire == self.wire,
            "{}",
            self.name
        );
        let mut mqttbytes_wire = BytesMut::new();
        self.mqttbytes.encode(&mut mqttbytes_wire).unwrap();
        let mut buf = mqttbytes_wire.clone();
        assert!(
            self.mqttbytes.decode_like(&mut buf).as_ref() == Ok(&self.mqttbytes),
            "{}: mqttbytes decodes its own encoding",
            self.name
        );
        let mut buf = mqttbytes_wire.clone();
        assert!(
            self.keel_decoder().decode(&mut buf) == Ok(Some(self.keel.clone())),
            "{}: keel decodes the mqttbytes encoding",
            self.name
        );

        // Both write the same number of bytes, and the same bytes where the order is fixed.
        assert!(
            keel_wire.len() == mqttbytes_wire.len(),
            "{}: encoded lengths",
            self.name
        );
        if self.same_bytes {
            assert!(keel_wire == mqttbytes_wire, "{}: encoded bytes", self.name);
        }
    }
}

fn payload(len: usize) -> Bytes {
    // Readable bytes, so the MQTT 5 case may declare the payload UTF-8 text.
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn mqtt_string(s: &str) -> MqttString {
    MqttString::new(s).expect("benchmark strings are valid")
}

fn keel_publish(payload: Bytes, properties: PublishProperties) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos_pid: QosPid::AtLeastOnce(PacketId::new(42).unwrap()),
        retain: false,
        topic: TopicName::new(TOPIC).unwrap(),
        properties,
        payload,
    })
}

fn keel_publish_properties() -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(true),
        message_expiry_interval: Some(3600),
        response_topic: Some(TopicName::new(RESPONSE_TOPIC).unwrap()),
        correlation_data: Some(Bytes::from_static(CORRELATION_DATA)),
        user_properties: USER_PROPERTIES
            .map(|(k, v)| (mqtt_string(k), mqtt_string(v)))
            .to_vec(),
        content_type: Some(mqtt_string(CONTENT_TYPE)),
        ..PublishProperties::default()
    }
}

fn mqttbytes_qos(qos: QoS) -> mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
    }
}

fn user_properties() -> Vec<(String, String)> {
    USER_PROPERTIES
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec()
}

fn publish_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (size_name, len) in [("64B", 64), ("4KB", 4096)] {
        let payload = payload(len);
        cases.push(Case::new(
            format!("publish_{size_name}_v311"),
            Protocol::V3_1_1,
            keel_publish(payload.clone(), PublishProperties::default()),
            MqttBytes::V4(v4::Packet::Publish(v4::Publish {
                dup: false,
                qos: mqttbytes::QoS::AtLeastOnce,
                retain: false,
                topic: TOPIC.to_owned(),
                pkid: 42,
                payload: payload.clone(),
            })),
            true,
        ));
        let mqttbytes_v5 = |properties| {
            MqttBytes::V5(v5::Packet::Publish(v5::Publish {
                dup: false,
                qos: mqttbytes::QoS::AtLeastOnce,
                retain: false,
                topic: TOPIC.to_owned(),
                pkid: 42,
                properties,
                payload: payload.clone(),
            }))
        };
        cases.push(Case::new(
            format!("publish_{size_name}_v5"),
            Protocol::V5,
            keel_publish(payload.clone(), PublishProperties::default()),
            mqttbytes_v5(None),
            true,
        ));
        cases.push(Case::new(
            format!("publish_{size_name}_v5_props"),
            Protocol::V5,
            keel_publish(payload.clone(), keel_publish_properties()),
            mqttbytes_v5(Some(v5::PublishProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(3600),
                topic_alias: None,
                response_topic: Some(RESPONSE_TOPIC.to_owned()),
                correlation_data: Some(Bytes::from_static(CORRELATION_DATA)),
                user_properties: user_properties(),
                subscription_identifiers: Vec::new(),
                content_type: Some(CONTENT_TYPE.to_owned()),
            })),
            false,
        ));
    }
    cases
}

fn keel_connect(protocol: Protocol, properties: ConnectProperties, will: WillProperties) -> Packet {
    Packet::Connect(Box::new(keel::codec::Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        properties,
        client_id: mqtt_string(CLIENT_ID),
        will: Some(LastWill {
            topic: TopicName::new(WILL_TOPIC).unwrap(),
            payload: Bytes::from_static(WILL_PAYLOAD),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: will,
        }),
        username: Some(mqtt_string(USERNAME)),
        password: Some(Bytes::from_static(PASSWORD.as_bytes())),
    }))
}

fn connect_cases() -> Vec<Case> {
    let v311 = Case::new(
        "connect_v311".to_owned(),
        Protocol::V3_1_1,
        keel_connect(
            Protocol::V3_1_1,
            ConnectProperties::default(),
            WillProperties::default(),
        ),
        MqttBytes::V4(v4::Packet::Connect(v4::Connect {
            protocol: mqttbytes::Protocol::V4,
            keep_alive: 60,
            client_id: CLIENT_ID.to_owned(),
            clean_session: true,
            last_will: Some(v4::LastWill {
                topic: WILL_TOPIC.to_owned(),
                message: Bytes::from_static(WILL_PAYLOAD),
                qos: mqttbytes::QoS::AtLeastOnce,
                retain: true,
            }),
            login: Some(v4::Login::new(USERNAME, PASSWORD)),
        })),
        true,
    );
    let keel_properties = ConnectProperties {
        session_expiry_interval: Some(3600),
        receive_maximum: NonZeroU16::new(32),
        maximum_packet_size: NonZeroU32::new(1 << 20),
        topic_alias_maximum: Some(16),
        user_properties: vec![(mqtt_string("client-version"), mqtt_string("keel-bench/1.0"))],
        ..ConnectProperties::default()
    };
    let keel_will = WillProperties {
        will_delay_interval: Some(30),
        content_type: Some(mqtt_string("text/plain")),
        ..WillProperties::default()
    };
    let v5 = Case::new(
        "connect_v5".to_owned(),
        Protocol::V5,
        keel_connect(Protocol::V5, keel_properties, keel_will),
        MqttBytes::V5(v5::Packet::Connect(v5::Connect {
            protocol: mqttbytes::Protocol::V5,
            keep_alive: 60,
            client_id: CLIENT_ID.to_owned(),
            clean_session: true,
            last_will: Some(v5::LastWill {
                topic: WILL_TOPIC.to_owned(),
                message: Bytes::from_static(WILL_PAYLOAD),
                qos: mqttbytes::QoS::AtLeastOnce,
                retain: true,
                properties: Some(v5::WillProperties {
                    delay_interval: Some(30),
                    payload_format_indicator: None,
                    message_expiry_interval: None,
                    content_type: Some("text/plain".to_owned()),
                    response_topic: None,
                    correlation_data: None,
                    user_properties: Vec::new(),
                }),
            }),
            login: Some(v5::Login::new(USERNAME, PASSWORD)),
            properties: Some(v5::ConnectProperties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(32),
                max_packet_size: Some(1 << 20),
                topic_alias_max: Some(16),
                request_response_info: None,
                request_problem_info: None,
                user_properties: vec![("client-version".to_owned(), "keel-bench/1.0".to_owned())],
                authentication_method: None,
                authentication_data: None,
            }),
        })),
        false,
    );
    vec![v311, v5]
}

fn subscribe_cases() -> Vec<Case> {
    let v311 = Case::new(
        "subscribe_v311".to_owned(),
        Protocol::V3_1_1,
        Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(7).unwrap(),
            properties: SubscribeProperties::default(),
            filters: FILTERS
                .iter()
                .map(|&(f, qos)| (TopicFilter::new(f).unwrap(), SubscriptionOptions::new(qos)))
                .collect(),
        }),
        MqttBytes::V4(v4::Packet::Subscribe(v4::Subscribe {
            pkid: 7,
            filters: FILTERS
                .iter()
                .map(|&(f, qos)| v4::SubscribeFilter::new(f.to_owned(), mqttbytes_qos(qos)))
                .collect(),
        })),
        true,
    );
    // MQTT 5 adds a subscription identifier and the other subscription options, one
    // combination per filter.
    let options = [
        (
            true,
            false,
            RetainHandling::SendAtSubscribe,
            v5::RetainForwardRule::OnEverySubscribe,
        ),
        (
            false,
            true,
            RetainHandling::SendAtNewSubscribe,
            v5::RetainForwardRule::OnNewSubscribe,
        ),
        (
            false,
            false,
            RetainHandling::DoNotSend,
            v5::RetainForwardRule::Never,
        ),
        (
            false,
            true,
            RetainHandling::SendAtSubscribe,
            v5::RetainForwardRule::OnEverySubscribe,
        ),
    ];
    let v5 = Case::new(
        "subscribe_v5".to_owned(),
        Protocol::V5,
        Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(7).unwrap(),
            properties: SubscribeProperties {
                subscription_identifier: NonZeroU32::new(7),
                user_properties: Vec::new(),
            },
            filters: FILTERS
                .iter()
                .zip(&options)
                .map(
                    |(&(f, qos), &(no_local, retain_as_published, retain_handling, _))| {
                        let options = SubscriptionOptions {
                            qos,
                            no_local,
                            retain_as_published,
                            retain_handling,
                        };
                        (TopicFilter::new(f).unwrap(), options)
                    },
                )
                .collect(),
        }),
        MqttBytes::V5(v5::Packet::Subscribe(v5::Subscribe {
            pkid: 7,
            filters: FILTERS
                .iter()
                .zip(&options)
                .map(
                    |(&(f, qos), (no_local, retain_as_published, _, rule))| v5::SubscribeFilter {
                        path: f.to_owned(),
                        qos: mqttbytes_qos(qos),
                        nolocal: *no_local,
                        preserve_retain: *retain_as_published,
                        retain_forward_rule: rule.clone(),
                    },
                )
                .collect(),
            properties: Some(v5::SubscribeProperties {
                id: Some(7),
                user_properties: Vec::new(),
            }),
        })),
        true,
    );
    vec![v311, v5]
}

fn cases() -> Vec<Case> {
    let mut cases = publish_cases();
    cases.extend(connect_cases());
    cases.extend(subscribe_cases());
    for case in &cases {
        case.verify();
    }
    cases
}

fn mqttbytes_first() -> bool {
    std::env::var_os("KEEL_BENCH_MQTTBYTES_FIRST").is_some_and(|v| v == "1")
}

/// Decodes this many fresh copies of a packet per timed stretch: small enough for the inputs
/// and outputs to stay in cache, large enough for the clock reads not to matter.
const DECODE_BATCH: u64 = 256;

/// Times `iters` decodes of `wire`, each from its own fresh `BytesMut`, for `iter_custom`.
///
/// criterion's `iter_batched` collects the outputs in a vector allocated just before the
/// timed loop, so first writes to its pages (page faults) are timed, in proportion to the size
/// of the output type; the two codecs' packet types differ in size. Here the output slots are
/// written once before timing, and the inputs are built and the decoded packets dropped
/// outside it, the same for both sides.
fn time_decode<O>(iters: u64, wire: &[u8], mut decode: impl FnMut(&mut BytesMut) -> O) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(DECODE_BATCH);
        let mut inputs: Vec<BytesMut> = (0..n).map(|_| BytesMut::from(wire)).collect();
        let mut outputs: Vec<Option<O>> = (0..n).map(|_| None).collect();
        let start = WallTime.start();
        for (input, output) in black_box(&mut inputs).iter_mut().zip(&mut outputs) {
            *output = Some(decode(input));
        }
        total += WallTime.end(start);
        drop(black_box(outputs));
        drop(inputs);
        left -= n;
    }
    total
}

fn bench_decode(c: &mut Criterion, case: &Case) {
    let mut group = c.benchmark_group(format!("decode/{}", case.name));
    let wire = &case.wire[..];
    let keel = |group: &mut BenchmarkGroup<WallTime>| {
        let mut decoder = case.keel_decoder();
        group.bench_function("keel", |b| {
            b.iter_custom(|iters| time_decode(iters, wire, |buf| decoder.decode(buf)))
        });
    };
    let mqttbytes = |group: &mut BenchmarkGroup<WallTime>| {
        // The protocol module is picked outside the timed closure, as Keel's decoder is
        // built outside it.
        match case.mqttbytes {
            MqttBytes::V4(_) => group.bench_function("mqttbytes", |b| {
                b.iter_custom(|iters| {
                    time_decode(iters, wire, |buf| v4::read(buf, PACKET_SIZE_MAX))
                })
            }),
            MqttBytes::V5(_) => group.bench_function("mqttbytes", |b| {
                b.iter_custom(|iters| {
                    time_decode(iters, wire, |buf| v5::read(buf, PACKET_SIZE_MAX))
                })
            }),
        };
    };
    if mqttbytes_first() {
        mqttbytes(&mut group);
        keel(&mut group);
    } else {
        keel(&mut group);
        mqttbytes(&mut group);
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion, case: &Case) {
    let mut group = c.benchmark_group(format!("encode/{}", case.name));
    // One buffer per side, with room for the packet from the start, cleared before each
    // encode: the steady state of a connection's write buffer. The result is unwrapped, as a
    // caller does; handing the whole `Result` to `black_box` instead would time a copy of it
    // through memory, whose cost depends on how each crate lays out its error type.
    let keel = |group: &mut BenchmarkGroup<WallTime>| {
        let mut buf = BytesMut::with_capacity(2 * case.wire.len());
        group.bench_function("keel", |b| {
            b.iter(|| {
                buf.clear();
                let written = black_box(&case.keel).encode(case.protocol, &mut buf);
                written.expect("verified to encode")
            })
        });
    };
    let mqttbytes = |group: &mut BenchmarkGroup<WallTime>| {
        let mut buf = BytesMut::with_capacity(2 * case.wire.len());
        group.bench_function("mqttbytes", |b| {
            b.iter(|| {
                buf.clear();
                let written = black_box(&case.mqttbytes).encode(&mut buf);
                written.expect("verified to encode")
            })
        });
    };
    if mqttbytes_first() {
        mqttbytes(&mut group);
        keel(&mut group);
    } else {
        keel(&mut group);
        mqttbytes(&mut group);
    }
    group.finish();
}

fn codec(c: &mut Criterion) {
    for case in cases() {
        bench_decode(c, &case);
        bench_encode(c, &case);
    }
}

criterion_group! {
    name = benches;
    // Shorter than criterion's defaults so that a whole run takes about three minutes and can
    // be repeated on a shared machine; the command line may override both.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = codec
}
criterion_main!(benches);
