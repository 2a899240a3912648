//! Gateway API routes: loading and validating the demos' files, refusing bad objects with
//! one-line errors, and flattening routes in Gateway API precedence order. One file per concept in
//! `tests/gateway/`, all in this one test binary (each binary is linked on its own).

// Inside this inline module, `mod x;` is looked for at `tests/gateway/x.rs`; at the crate root it
// would be `tests/x.rs`, which cargo would build as a test binary of its own.
mod gateway {
    mod backends;
    mod demo_files;
    mod matches;
    mod order;
    mod parents;
    mod refusals;
    mod robustness;
    mod support;
}
