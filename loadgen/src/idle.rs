//! One idle connection: it only keeps itself alive with PINGREQ at half its keep-alive until
//! the run closes.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::{read_into, unexpected, write_ready, Conn, ConnError};
use super::publisher::sleep_until;
use super::shared::Phase;
use keel::codec::Packet;

enum Event {
    Phase,
    Read(Result<usize, ConnError>),
    Writable(std::io::Result<()>),
    Ping,
}

/// Holds `conn` open until the phase is `Close`, then disconnects.
pub async fn hold_idle(
    mut conn: Conn,
    keep_alive: Duration,
    mut phase: watch::Receiver<Phase>,
) -> Result<(), ConnError> {
    let ping_every = (keep_alive / 2).max(Duration::from_secs(1));
    let mut next_ping = Instant::now() + ping_every;
    let outcome = loop {
        let event = {
            let mut io = conn.io();
            tokio::select! {
                biased;
                _ = phase.changed() => Event::Phase,
                r = read_into(&mut io.read, io.read_buf, io.read_chunk) => Event::Read(r),
                r = write_ready(&io.write), if io.pending_writes => Event::Writable(r),
                _ = sleep_until(Some(next_ping)), if !keep_alive.is_zero() => Event::Ping,
            }
        };
        let step = match event {
            Event::Phase => {
                let now_phase = *phase.borrow_and_update();
                if now_phase == Phase::Close || phase.has_changed().is_err() {
                    break Ok(());
                }
                Ok(())
            }
            Event::Read(r) => r.and_then(|_| drain_pings(&mut conn)),
            Event::Writable(r) => r.and_then(|()| conn.try_flush()).map_err(ConnError::from),
            Event::Ping => {
                next_ping += ping_every;
                conn.queue(&Packet::PingReq)
                    .map_err(ConnError::from)
                    .and_then(|()| conn.try_flush().map_err(ConnError::from))
            }
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    conn.disconnect().await;
    outcome
}

/// Consumes the PINGRESPs in the read buffer; anything else is unexpected.
fn drain_pings(conn: &mut Conn) -> Result<(), ConnError> {
    while let Some(packet) = conn.next_packet()? {
        match packet {
            Packet::PingResp => {}
            other => return Err(unexpected("PINGRESP", &other)),
        }
    }
    Ok(())
}
