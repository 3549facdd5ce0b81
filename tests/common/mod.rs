//! A Keel node on a free loopback port for integration tests, shut down when dropped.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use keel::net::{Rng, SystemClock, TokioNet};
use keel::server::{ListenerSpec, Server, ServerSettings};
use keel::transport::TransportAcceptor;
use tokio::sync::oneshot;

pub struct TestBroker {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestBroker {
    /// Starts a node with `settings`, listening on one TCP port of 127.0.0.1.
    pub async fn start(mut settings: ServerSettings) -> TestBroker {
        settings.listeners = vec![ListenerSpec {
            addr: "127.0.0.1:0".into(),
            acceptor: TransportAcceptor::tcp(),
        }];
        let server = Server::bind(&TokioNet, settings).await.expect("bind");
        let addr = server.local_addrs().expect("local addr")[0];
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(Arc::new(SystemClock), Rng::from_seed(7), async {
            let _ = stopped.await;
        }));
        TestBroker {
            addr,
            stop: Some(stop),
        }
    }

    pub async fn start_default() -> TestBroker {
        TestBroker::start(ServerSettings::default()).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
