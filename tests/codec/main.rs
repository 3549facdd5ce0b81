//! The packet codec against the specs, one test program: golden bytes of every packet type
//! ([`golden`]) and malformed or forbidden input ([`malformed`]).

mod golden;
mod malformed;
