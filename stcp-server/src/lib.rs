//! stcp-server: a thread-per-core echo server for STCP (Noise-secured records) and raw framed TCP,
//! on io_uring with an epoll (tokio) fallback. Also a library: [`Server::start`] runs it in-process
//! and returns a [`ServerHandle`] with the bound addresses, counters, `stop()` and `join()`.
//! [`metrics`] serves the counters to Prometheus (`Config::metrics_listen`).
//!
//! ```no_run
//! use stcp_server::{Config, Server};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keypair = stcp_proto::StaticKeypair::generate([7; 32]); // use OS randomness for real
//! let server = Server::start(Config::ephemeral(keypair))?;
//! println!("STCP on {:?}, TCP on {:?}", server.stcp_addr(), server.tcp_addr());
//! server.stop();
//! let totals = server.join()?;
//! println!("{} frames echoed", totals.frames);
//! # Ok(()) }
//! ```
//!
//! The io_uring worker is a handler of the `stcp-engine` driver (shared with the load generator);
//! [`units`] parses human sizes and durations for both command lines, [`messages`] words what
//! they tell a user, and [`fd_limit`] checks the open-file limit against the connections wanted.

pub mod config;
pub mod console;
mod echo;
mod engine;
pub mod errors;
pub mod fd_limit;
pub mod handshake_limit;
pub mod listener;
pub mod messages;
pub mod metrics;
mod ratelog;
pub mod server;
pub mod stats;
pub mod tls;
pub mod units;

pub use config::{Config, IoBackend};
pub use errors::{ErrorKind, ServerError};
pub use server::{Backend, Server, ServerHandle, Stopper};
pub use stats::StatsSnapshot;
pub use tls::TlsIdentity;
