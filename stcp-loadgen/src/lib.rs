//! stcp-loadgen: the matched io_uring load generator for STCP and raw TCP echo.
//!
//! The binary (`src/main.rs`) parses the command line ([`cli`]) and runs a load test ([`run`]),
//! merges reports ([`merge`]), runs the seed's table in TCP and STCP mode ([`suite`]), sweeps the
//! offered rate to find each mode's capacity under a latency SLO ([`sweep`]), renders reports as
//! Markdown and SVG charts ([`render`]) or measures one-way loopback TCP ([`stream`]).
//! A run drives persistent connections from io_uring client threads ([`engine`]) against a
//! [`server_under_test::ServerUnderTest`], collects a [`measurement::Measurement`] and writes it
//! as a versioned JSON [`report::Report`] (every report schema is documented in docs/REPORT.md).

pub mod cli;
// Output that a closed pipe cannot turn into a panic (`crate::stderr_line!` and the rest).
pub use stcp_server::{stderr_line, stderr_text, stdout_line, stdout_text};
pub mod cpu_time;
pub mod descriptors;
pub mod embedded;
pub mod engine;
pub mod entropy;
pub mod environment;
pub mod errors;
pub mod hist_codec;
pub mod interrupt;
pub mod measurement;
pub mod merge;
pub mod payload;
pub mod render;
pub mod report;
pub mod run;
pub mod schedule;
pub mod server_under_test;
pub mod start_at;
pub mod stats;
pub mod stream;
pub mod suite;
pub mod summary;
pub mod sweep;
pub mod tls;
pub mod values;
