//! The twin with real processes: server pods, the client, our DNS, kube-proxy's virtual IPs and a
//! real Envoy sidecar fed by our control plane. One file per concept in `tests/twin/`, all in this
//! one test binary (each binary is linked on its own, and one binary runs all the tests in
//! parallel).

mod common;

// Inside this inline module, `mod x;` is looked for at `tests/twin/x.rs`; at the crate root it
// would be `tests/x.rs`, which cargo would build as a test binary of its own.
mod twin {
    mod ambient;
    mod faults;
    mod routes;
    mod services;
    mod support;
}
