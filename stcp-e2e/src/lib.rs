//! End-to-end tests of `stcp-server`, in `tests/`: the hostile-peer matrix (`hostile.rs`),
//! faults of the server process under load (`faults.rs`), and what a new user meets with both
//! binaries (`first_hour.rs`: every class of error message and its exit status, the open-file
//! limit, log colour, IPv6, a refused server). They drive the real `stcp-server` and
//! `stcp-loadgen` binaries, which they do not build: `cargo test --workspace` builds both before
//! any test runs (`cargo build -p stcp-server -p stcp-loadgen` before `cargo test -p stcp-e2e`;
//! `STCP_SERVER_BIN` and `STCP_LOADGEN_BIN` point at other builds). The library is empty.
