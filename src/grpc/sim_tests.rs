//! The gRPC plumbing inside the simulator (turmoil, on `SimNet`): calls succeed, a call across
//! a partition fails within its deadline instead of hanging, and after the partition heals
//! the channel drops its dead connection and dials a new one.

use std::time::Duration;

use tokio::time::Instant;

use super::proto::Blob;
use super::tests::{numbered_blob, EchoCluster};
use super::*;
use crate::net::{Net, SimNet};

const PORT: u16 = 7000;

/// The deadline of each call the client makes.
const CALL_DEADLINE: Duration = Duration::from_secs(1);

/// A sim whose server host serves [`EchoCluster`] on [`PORT`] forever.
fn sim_with_echo_server() -> turmoil::Sim<'static> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(7)
        .simulation_duration(Duration::from_secs(60))
        .build();
    sim.host("server", || async {
        let listener = SimNet.bind(&format!("0.0.0.0:{PORT}")).await?;
        let forever = std::future::pending::<()>();
        serve(listener, EchoCluster, &ServerConfig::default(), forever).await?;
        Ok(())
    });
    sim
}

/// Proposes `blob` with [`CALL_DEADLINE`]; returns the outcome and how long it took.
async fn propose(
    client: &mut proto::cluster_client::ClusterClient<tonic::transport::Channel>,
    blob: Blob,
) -> (Result<Blob, GrpcError>, Duration) {
    let start = Instant::now();
    let outcome = with_deadline(CALL_DEADLINE, client.propose(blob)).await;
    (outcome, start.elapsed())
}

#[test]
fn calls_succeed_between_simulated_hosts() {
    let mut sim = sim_with_echo_server();
    sim.client("client", async {
        let config = ChannelConfig::default();
        let channel = connect(SimNet, format!("server:{PORT}"), &config).await?;
        let mut client = cluster_client(channel, &config);
        for n in 0..10 {
            let (outcome, _) = propose(&mut client, numbered_blob(n)).await;
            assert_eq!(outcome?, numbered_blob(n));
        }
        let blobs = futures_util::stream::iter((0..1000).map(numbered_blob));
        let tally = with_deadline(CALL_DEADLINE, client.forward(blobs)).await?;
        assert_eq!(super::tests::forward_tally(&tally), (1000, 4000));
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_call_across_a_partition_fails_within_its_deadline_and_the_channel_reconnects_after_repair() {
    let mut sim = sim_with_echo_server();
    sim.client("client", async {
        let config = ChannelConfig::default();
        let channel = connect_lazy(SimNet, format!("server:{PORT}"), &config)?;
        let mut client = cluster_client(channel, &config);

        let (outcome, _) = propose(&mut client, numbered_blob(1)).await;
        assert_eq!(
            outcome?,
            numbered_blob(1),
            "a call on a healthy link succeeds"
        );

        // The partition drops the request's bytes; the connection looks open to both ends.
        turmoil::partition("client", "server");
        let (outcome, took) = propose(&mut client, numbered_blob(2)).await;
        assert!(outcome.is_err(), "a call across a partition cannot succeed");
        assert!(
            took <= CALL_DEADLINE + Duration::from_millis(10),
            "the failed call took {took:?}, past its deadline"
        );

        // Calls keep failing within their deadline while the partition lasts: first on the
        // dead connection, then (once keep-alive has closed it) on dials, which turmoil
        // refuses at once across a partition and the channel holds for its reconnect backoff.
        // Without that backoff this loop would spin inside one simulated tick.
        let partitioned_at = Instant::now();
        while partitioned_at.elapsed() < Duration::from_secs(5) {
            let (outcome, took) = propose(&mut client, numbered_blob(3)).await;
            assert!(outcome.is_err(), "a call across a partition cannot succeed");
            assert!(
                took <= CALL_DEADLINE + Duration::from_millis(10),
                "{took:?}"
            );
        }

        // Once the link heals the channel must dial a fresh connection: the old one stays dead,
        // since turmoil does not retransmit what the partition dropped.
        turmoil::repair("client", "server");
        let repaired_at = Instant::now();
        let mut attempts = 0u32;
        let recovered_after = loop {
            attempts += 1;
            let (outcome, _) = propose(&mut client, numbered_blob(4)).await;
            match outcome {
                Ok(echoed) => {
                    assert_eq!(echoed, numbered_blob(4));
                    break repaired_at.elapsed();
                }
                Err(error) => {
                    assert!(attempts < 20, "no call succeeded after the repair: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        tracing::info!(
            attempts,
            ?recovered_after,
            "channel reconnected after repair"
        );
        assert!(
            recovered_after <= Duration::from_secs(5),
            "reconnecting took {recovered_after:?}"
        );

        // And stays usable.
        for n in 10..20 {
            let (outcome, _) = propose(&mut client, numbered_blob(n)).await;
            assert_eq!(outcome?, numbered_blob(n));
        }
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn a_brief_partition_leaves_a_dead_connection_that_keep_alive_replaces() {
    let mut sim = sim_with_echo_server();
    sim.client("client", async {
        let config = ChannelConfig::default();
        let channel = connect(SimNet, format!("server:{PORT}"), &config).await?;
        let mut client = cluster_client(channel, &config);
        let (outcome, _) = propose(&mut client, numbered_blob(1)).await;
        assert_eq!(outcome?, numbered_blob(1));

        // Healed before keep-alive can notice: the request sent meanwhile is lost, and with it
        // the connection (turmoil holds every later segment behind the missing one).
        turmoil::partition("client", "server");
        let (outcome, took) = propose(&mut client, numbered_blob(2)).await;
        turmoil::repair("client", "server");
        assert!(outcome.is_err(), "a call across a partition cannot succeed");
        assert!(
            took <= CALL_DEADLINE + Duration::from_millis(10),
            "{took:?}"
        );

        // Calls on the dead connection time out until a keep-alive PING goes unanswered and
        // closes it; the next call dials a fresh connection.
        let repaired_at = Instant::now();
        let mut attempts = 0u32;
        let recovered_after = loop {
            attempts += 1;
            let (outcome, _) = propose(&mut client, numbered_blob(3)).await;
            if outcome.is_ok() {
                break repaired_at.elapsed();
            }
            assert!(attempts < 20, "no call succeeded after the repair");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        tracing::info!(
            attempts,
            ?recovered_after,
            "channel reconnected after a brief partition"
        );
        let detection_max = config.keep_alive_interval + config.keep_alive_timeout + CALL_DEADLINE;
        assert!(
            recovered_after <= detection_max,
            "reconnecting took {recovered_after:?}, more than keep-alive allows"
        );
        Ok(())
    });
    sim.run().unwrap();
}
