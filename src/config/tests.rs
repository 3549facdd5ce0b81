//! The configuration as a whole (the example file, the reference, printing and reading back,
//! loading) and each table's defaults, validation and conversions.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::broker::BrokerConfig;
use crate::codec::QoS;
use crate::session::SessionConfig;
use crate::state::OverflowPolicy;
use crate::transport::{ClientAuth, WsConfig};

const EXAMPLE: &str = include_str!("../../keel.example.toml");

fn parse(text: &str) -> Config {
    Config::from_toml(text).unwrap_or_else(|e| panic!("{e}"))
}

/// `problem` of the validation error of `text`, which must parse.
fn invalid(text: &str) -> InvalidConfig {
    parse(text).validate().expect_err("should be invalid")
}

/// A configuration with every optional key set.
fn full() -> Config {
    parse(
        r#"
        node_id = 2
        [tls]
        cert = "c.pem"
        key = "k.pem"
        client_ca = "ca.pem"
        require_client_cert = true
        use_identity_as_username = true
        [auth]
        password_file = "passwd"
        acl_file = "acl.toml"
        chain = ["jwt", "password_file", "http"]
        [auth.jwt]
        secret = "s"
        issuer = "i"
        audience = "a"
        [auth.http]
        url = "http://h/auth"
        headers = { authorization = "x" }
        [admin]
        api_key = "0123456789abcdef"
        users = ["admin"]
        [cluster]
        listen = "0.0.0.0:7000"
        peers = ["1@a:7000", "2@b:7000", "3@[::1]:7000"]
        [cluster.tls]
        ca = "ca.pem"
        cert = "node-1.pem"
        key = "node-1.key"
        "#,
    )
}

/// Dotted paths of every key of a TOML document.
fn keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => keys(inner, &format!("{path}."), out),
            _ => {
                out.insert(path);
            }
        }
    }
}

fn key_set(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    keys(&text.parse::<toml::Table>().unwrap(), "", &mut out);
    out
}

/// The example with its commented-out settings (`# key = value`, `# [table]`) turned on.
fn example_uncommented() -> String {
    let is_setting = |line: &str| {
        let table = line.starts_with('[') && line.ends_with(']');
        let key = line.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        });
        table || key
    };
    let lines = EXAMPLE.lines().map(|line| match line.strip_prefix("# ") {
        Some(setting) if is_setting(setting) => setting,
        _ => line,
    });
    lines.collect::<Vec<_>>().join("\n")
}

#[test]
fn example_file_equals_the_defaults() {
    let example = parse(EXAMPLE);
    assert_eq!(example, Config::default());
    example.validate().unwrap();
}

#[test]
fn example_file_lists_every_option() {
    let uncommented = example_uncommented();
    let config = parse(&uncommented);
    assert!(config.tls.is_some() && config.auth.password_file.is_some());
    assert!(config.cluster.listen.is_some() && config.cluster.join.is_some());
    let in_example = key_set(&uncommented);
    let mut expected = key_set(&full().to_toml().unwrap());
    expected.insert("cluster.join".to_owned());
    expected.insert("cluster.advertise".to_owned());
    // The alternative to `secret` (a valid configuration has one of them).
    expected.insert("auth.jwt.public_key_file".to_owned());
    assert_eq!(in_example, expected);
    assert!(key_set(&Config::default().to_toml().unwrap()).is_subset(&in_example));
}

#[test]
fn defaults_are_those_of_each_layer() {
    let config = Config::default();
    assert_eq!(config.session_config(), SessionConfig::default());
    assert_eq!(config.broker_config(), BrokerConfig::default());
    assert_eq!(config.ws_config(), WsConfig::default());
    assert_eq!(config.connect_timeout(), Duration::from_secs(10));
    assert_eq!(config.mqtt.connections_max, 100_000);
    assert_eq!(config.mqtt.sys_interval_secs, 10);
    assert_eq!(config.node_id, 1);
    assert_eq!(config.data_dir, Path::new("./keel-data"));
    assert!(config.auth.allow_anonymous && config.auth.password_file.is_none());
    assert_eq!(config.tls_settings(), None);
    assert_eq!(config.tls_listener(), None, "TLS listeners need [tls]");
    assert_eq!(config.wss_listener(), None);
    let listeners = &config.listeners;
    assert_eq!(listeners.tcp, Some("0.0.0.0:1883".parse().unwrap()));
    assert_eq!(listeners.ws, Some("0.0.0.0:8083".parse().unwrap()));
    assert_eq!(listeners.http, Some("127.0.0.1:18083".parse().unwrap()));
    assert_eq!(listeners.tls, Some("0.0.0.0:8883".parse().unwrap()));
    assert_eq!(listeners.wss, Some("0.0.0.0:8084".parse().unwrap()));
    config.validate().unwrap();
}

#[test]
fn an_empty_file_is_the_default_configuration() {
    assert_eq!(parse(""), Config::default());
}

#[test]
fn authentication_methods_are_checked() {
    let cases = [
        ("[auth]\nchain = [\"jwt\"]", "auth.chain", "not configured"),
        (
            "[auth]\npassword_file = \"p\"\nchain = [\"password_file\", \"password_file\"]",
            "auth.chain",
            "twice",
        ),
        ("[auth.jwt]\nleeway_secs = 1", "auth.jwt", "exactly one"),
        (
            "[auth.jwt]\nsecret = \"s\"\npublic_key_file = \"k\"",
            "auth.jwt",
            "exactly one",
        ),
        (
            "[auth.http]\nurl = \"https://h/\"",
            "auth.http.url",
            "http://",
        ),
        (
            "[auth.http]\nurl = \"http://h/\"\ntimeout_ms = 0",
            "auth.http.timeout_ms",
            "at least 1",
        ),
        (
            "[auth]\nallow_anonymous = false",
            "auth.allow_anonymous",
            "no authentication method",
        ),
        (
            "[tls]\ncert = \"c\"\nkey = \"k\"\nuse_identity_as_username = true",
            "tls.use_identity_as_username",
            "client_ca",
        ),
    ];
    for (text, field, words) in cases {
        let error = invalid(text);
        assert_eq!(error.field, field, "{text}");
        assert!(error.to_string().contains(words), "{text}: {error}");
    }
    // Any method, or certificates as identities, lets anonymous access be turned off.
    parse("[auth]\nallow_anonymous = false\n[auth.jwt]\nsecret = \"s\"")
        .validate()
        .unwrap();
    let certificates = "[tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = \"ca\"\n\
                        use_identity_as_username = true\n[auth]\nallow_anonymous = false";
    parse(certificates).validate().unwrap();
    // The default chain: every configured method, file first.
    let both = parse("[auth]\npassword_file = \"p\"\n[auth.http]\nurl = \"http://h/\"");
    assert_eq!(
        both.auth.chain(),
        [AuthMethodName::PasswordFile, AuthMethodName::Http]
    );
    assert_eq!(both.auth.http.unwrap().timeout_ms, 5000);
}

/// The configuration reference (docs/configuration.md) names every option of the example
/// file, each with the default the example gives it (the example is checked against the
/// defaults above).
#[test]
fn reference_documents_every_option() {
    const REFERENCE: &str = include_str!("../../docs/configuration.md");
    let reference = REFERENCE
        .split_once("# Configuration reference")
        .expect("docs/configuration.md has a configuration reference")
        .1;
    let example: toml::Table = example_uncommented().parse().unwrap();
    let mut missing = Vec::new();
    for key in key_set(&example_uncommented()) {
        // The headers table holds the operator's own names.
        let key = match key.strip_prefix("auth.http.headers.") {
            Some(_) => "auth.http.headers".to_owned(),
            None => key,
        };
        let named = |line: &&str| {
            let option = line.split('|').nth(1).unwrap_or("");
            option.contains(&format!("`{key}`"))
        };
        let Some(row) = reference.lines().find(named) else {
            missing.push(key);
            continue;
        };
        // A default that the example file sets uncommented must be in the row as given.
        let mut value = Some(toml::Value::Table(example.clone()));
        for part in key.split('.') {
            value = value.and_then(|v| v.get(part).cloned());
        }
        if let Some(value) = value.filter(|_| !key.starts_with("auth.http.headers")) {
            let shown = match &value {
                toml::Value::Array(a) if a.is_empty() => "[]".to_owned(),
                other => other.to_string(),
            };
            let commented_out = EXAMPLE.lines().any(|l| {
                l.starts_with("# ")
                    && l.contains(&format!("{} = ", key.rsplit('.').next().unwrap()))
            });
            if !commented_out {
                assert!(
                    row.contains(&shown),
                    "docs/configuration.md gives {key} no default {shown}: {row}"
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks {missing:?}"
    );
}

#[test]
fn printed_configuration_reads_back_the_same() {
    let full = full();
    full.validate().unwrap();
    assert_eq!(parse(&full.to_toml().unwrap()), full);
    assert_eq!(
        parse(&Config::default().to_toml().unwrap()),
        Config::default()
    );
}

#[test]
fn unknown_keys_are_errors_naming_the_key_and_line() {
    let error = Config::from_toml("[mqtt]\nrecieve_maximum = 5\n").unwrap_err();
    let message = error.to_string();
    assert!(message.contains("recieve_maximum"), "{message}");
    assert!(message.contains("line 2"), "{message}");

    let error = Config::from_toml("[listener]\ntcp = \"\"\n").unwrap_err();
    assert!(error.to_string().contains("listener"), "{error}");
    assert!(Config::from_toml("nodeid = 3").is_err());
    assert!(Config::from_toml("[tls]\ncert = \"c\"\nkey = \"k\"\nca = \"x\"").is_err());
}

#[test]
fn wrong_types_are_errors() {
    assert!(Config::from_toml("[mqtt]\nreceive_maximum = \"ten\"").is_err());
    assert!(Config::from_toml("[mqtt]\nreceive_maximum = 70000").is_err());
    assert!(Config::from_toml("[mqtt]\noverflow = \"drop_all\"").is_err());
    assert!(
        Config::from_toml("[tls]\ncert = \"c.pem\"").is_err(),
        "key is required"
    );
}

#[test]
fn an_empty_listen_address_turns_the_listener_off() {
    let config = parse("[listeners]\nws = \"\"\nhttp = \"\"\ntcp = \"127.0.0.1:11883\"");
    assert_eq!(config.listeners.ws, None);
    assert_eq!(config.listeners.http, None);
    assert_eq!(
        config.listeners.tcp,
        Some("127.0.0.1:11883".parse().unwrap())
    );
    assert!(config.to_toml().unwrap().contains("ws = \"\""));
    assert_eq!(parse(&config.to_toml().unwrap()), config);
}

#[test]
fn a_bad_listen_address_is_an_error_with_its_line() {
    let error = Config::from_toml("[listeners]\ntcp = \"localhost\"").unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("invalid listen address \"localhost\""),
        "{message}"
    );
    assert!(message.contains("line 2"), "{message}");
    assert!(Config::from_toml("[listeners]\ntcp = false").is_err());
}

#[test]
fn overflow_policy_reaches_the_state_config() {
    let config =
        parse("[mqtt]\noverflow = \"drop_oldest\"\nqueue_max = 5\nqueue_bytes_max = 2000000");
    let state = config.broker_config().state;
    assert_eq!(state.overflow, OverflowPolicy::DropOldest);
    assert_eq!((state.queue_max, state.queue_bytes_max), (5, 2_000_000));
}

#[test]
fn mqtt_limits_reach_the_session_and_broker() {
    let config = parse(
        "[mqtt]\npacket_size_max = 4096\nreceive_maximum = 10\nmaximum_qos = 1\n\
         retain_available = false\ninflight_max = 7\nkeep_alive_max_secs = 60",
    );
    let session = config.session_config();
    assert_eq!(session.packet_size_max, 4096);
    assert_eq!(session.receive_maximum, 10);
    assert_eq!(session.maximum_qos, QoS::AtLeastOnce);
    assert!(!session.retain_available);
    assert_eq!(session.keep_alive_max_secs, 60);
    let broker = config.broker_config();
    assert_eq!((broker.inflight_max, broker.receive_maximum), (7, 10));
}

#[test]
fn mqtt_limits_out_of_range_are_invalid() {
    let cases = [
        ("receive_maximum = 0", "mqtt.receive_maximum"),
        ("packet_size_max = 1", "mqtt.packet_size_max"),
        ("packet_size_max = 268435461", "mqtt.packet_size_max"),
        ("maximum_qos = 3", "mqtt.maximum_qos"),
        ("client_id_len_max = 22", "mqtt.client_id_len_max"),
        ("client_id_len_max = 65536", "mqtt.client_id_len_max"),
        ("inflight_max = 0", "mqtt.inflight_max"),
        ("queue_max = 0", "mqtt.queue_max"),
        ("queue_bytes_max = 0", "mqtt.queue_bytes_max"),
        ("queue_bytes_max = 1048575", "mqtt.queue_bytes_max"),
        ("packet_size_max = 268435460", "mqtt.queue_bytes_max"),
        ("connect_timeout_secs = 0", "mqtt.connect_timeout_secs"),
        ("connections_max = 0", "mqtt.connections_max"),
    ];
    for (line, field) in cases {
        assert_eq!(invalid(&format!("[mqtt]\n{line}")).field, field, "{line}");
    }
    for line in [
        "packet_size_max = 2",
        "packet_size_max = 268435460\nqueue_bytes_max = 268435460",
        "queue_bytes_max = 1048576",
        "maximum_qos = 0",
    ] {
        parse(&format!("[mqtt]\n{line}")).validate().unwrap();
    }
}

#[test]
fn tls_settings_follow_client_ca_and_require_client_cert() {
    let tls = |extra: &str| {
        let config = parse(&format!(
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{extra}"
        ));
        config.validate().unwrap();
        config.tls_settings().unwrap()
    };
    let off = tls("");
    assert_eq!(off.cert_chain_path, Path::new("c.pem"));
    assert_eq!(off.key_path, Path::new("k.pem"));
    assert_eq!(off.client_auth, ClientAuth::Off);
    let ca_path = PathBuf::from("ca.pem");
    assert_eq!(
        tls("client_ca = \"ca.pem\"").client_auth,
        ClientAuth::Optional {
            ca_path: ca_path.clone()
        }
    );
    assert_eq!(
        tls("client_ca = \"ca.pem\"\nrequire_client_cert = true").client_auth,
        ClientAuth::Required { ca_path }
    );
    let error = invalid("[tls]\ncert = \"c\"\nkey = \"k\"\nrequire_client_cert = true");
    assert_eq!(error.field, "tls.require_client_cert");
}

#[test]
fn tls_listeners_start_only_with_a_certificate() {
    let config = parse("[tls]\ncert = \"c\"\nkey = \"k\"\n[listeners]\nwss = \"\"");
    assert_eq!(config.tls_listener(), Some("0.0.0.0:8883".parse().unwrap()));
    assert_eq!(config.wss_listener(), None);
}

#[test]
fn a_node_without_mqtt_listeners_is_invalid() {
    let off = "[listeners]\ntcp = \"\"\nws = \"\"";
    assert_eq!(invalid(off).field, "listeners");
    // TLS listeners count only with a certificate.
    parse(&format!("{off}\n[tls]\ncert = \"c\"\nkey = \"k\""))
        .validate()
        .unwrap();
}

#[test]
fn an_admin_api_other_hosts_reach_needs_credentials() {
    let error = invalid("[listeners]\nhttp = \"0.0.0.0:18083\"");
    assert_eq!(error.field, "listeners.http");
    assert!(error.problem.contains("api_key"), "{error}");
    invalid("[listeners]\nhttp = \"192.0.2.7:18083\"");
    for loopback in ["127.0.0.1:18083", "127.0.0.9:80", "[::1]:18083"] {
        parse(&format!("[listeners]\nhttp = \"{loopback}\""))
            .validate()
            .unwrap();
    }
    parse("[listeners]\nhttp = \"0.0.0.0:18083\"\n[admin]\napi_key = \"0123456789abcdef\"")
        .validate()
        .unwrap();
    let users = "[listeners]\nhttp = \"0.0.0.0:18083\"\n[admin]\nusers = [\"ops\"]\n\
                 [auth]\npassword_file = \"p\"";
    parse(users).validate().unwrap();
}

#[test]
fn two_listeners_on_one_port_are_invalid() {
    let error = invalid("[listeners]\nws = \"127.0.0.1:1883\"");
    assert_eq!(error.field, "listeners.ws");
    assert!(error.problem.contains("listeners.tcp"), "{error}");
    let error = invalid("[cluster]\nlisten = \"0.0.0.0:18083\"");
    assert_eq!(error.field, "cluster.listen");
    let error = invalid("[listeners]\ntcp = \"[::]:1883\"\nws = \"127.0.0.1:1883\"");
    assert_eq!(error.field, "listeners.ws");
    // Port 0 (any free port) never collides.
    parse("[listeners]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"")
        .validate()
        .unwrap();
    // Different IPs of one family on one port do not collide, nor do unstarted listeners.
    parse("[listeners]\ntcp = \"127.0.0.1:1883\"\nws = \"127.0.0.2:1883\"\ntls = \"0.0.0.0:8083\"")
        .validate()
        .unwrap();
}

#[test]
fn refusing_anonymous_clients_needs_a_password_file() {
    let error = invalid("[auth]\nallow_anonymous = false");
    assert_eq!(error.field, "auth.allow_anonymous");
    parse("[auth]\nallow_anonymous = false\npassword_file = \"p\"")
        .validate()
        .unwrap();
}

#[test]
fn peers_are_parsed_as_id_at_host_port() {
    let config = full();
    let ids: Vec<u64> = config.cluster.peers.iter().map(|p| p.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(config.cluster.peers[2].addr.host, "[::1]");
    assert_eq!(config.cluster.peers[2].addr.port, 7000);
    assert_eq!(config.cluster.peers[2].to_string(), "3@[::1]:7000");
    let bad = [
        "a:7000",
        "x@a:7000",
        "1@a",
        "1@:7000",
        "1@a:0",
        "1@a:70000",
        "1@::1:7000",
        "1@a b:7000",
        "1@a,b:7000",
    ];
    for peer in bad {
        let text = format!("[cluster]\npeers = [\"1@a:7000\", \"{peer}\"]");
        let error = Config::from_toml(&text).expect_err(peer).to_string();
        assert!(error.contains("invalid"), "{peer}: {error}");
        assert!(error.contains("line 2"), "{peer}: {error}");
    }
}

#[test]
fn cluster_membership_is_checked() {
    let error = invalid("[cluster]\npeers = [\"2@a:1\", \"3@b:1\"]");
    assert_eq!(error.field, "cluster.peers");
    assert!(error.problem.contains("node_id = 1"), "{error}");
    let error = invalid("[cluster]\npeers = [\"1@a:1\", \"1@b:1\"]");
    assert!(error.problem.contains("listed twice"), "{error}");
    let error = invalid("[cluster]\npeers = [\"1@a:1\", \"2@a:1\"]");
    assert!(error.problem.contains("a:1"), "{error}");
    let error = invalid("[cluster]\npeers = [\"1@a:1\"]\njoin = \"b:1\"\nlisten = \"0.0.0.0:1\"");
    assert_eq!(error.field, "cluster.join");
    let error = invalid("[cluster]\njoin = \"b:1\"");
    assert_eq!(error.field, "cluster.listen");
    let error = invalid("[cluster]\njoin = \"b:1\"\nlisten = \"0.0.0.0:7000\"");
    assert_eq!(error.field, "cluster.advertise");
    let joining = "[cluster]\njoin = \"b:1\"\nlisten = \"0.0.0.0:7000\"\nadvertise = \"c:7000\"";
    assert_eq!(invalid(joining).field, "cluster.tls");
    let joining = parse(&format!("{joining}\ninsecure = true"));
    joining.validate().unwrap();
    assert_eq!(joining.cluster.advertised(1).as_deref(), Some("c:7000"));
    let forming = "[cluster]\npeers = [\"1@a:1\"]\nlisten = \"0.0.0.0:1\"";
    let with_tls = format!("{forming}\n[cluster.tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"");
    parse(&with_tls).validate().unwrap();
    let both =
        format!("{forming}\ninsecure = true\n[cluster.tls]\nca = \"a\"\ncert = \"c\"\nkey = \"k\"");
    assert_eq!(invalid(&both).field, "cluster.insecure");
    let forming = parse(&format!("{forming}\ninsecure = true"));
    forming.validate().unwrap();
    assert_eq!(forming.cluster.advertised(1).as_deref(), Some("a:1"));
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let error = Config::load(&missing).unwrap_err().to_string();
    assert!(error.contains("missing.toml"), "{error}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[mqtt]\nreceive_maximum = 0\n").unwrap();
    let error = Config::load(&bad).unwrap_err().to_string();
    assert!(error.contains("bad.toml"), "{error}");
    assert!(error.contains("mqtt.receive_maximum"), "{error}");
    assert!(Config::read(&bad).is_ok(), "read does not validate");

    std::fs::write(&bad, "[mqtt\n").unwrap();
    let error = Config::load(&bad).unwrap_err().to_string();
    assert!(
        error.contains("bad.toml") && error.contains("line 1"),
        "{error}"
    );
}
