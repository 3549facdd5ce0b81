//! Simulation tests: the real broker node and MQTT clients as turmoil hosts
//! (`cargo test --features sim`). One seed replays a run: `KEEL_SIM_SEED=N`.

mod chaos;
mod cluster;
mod smoke;
mod support;
