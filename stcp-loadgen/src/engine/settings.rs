//! What every connection of a client thread needs to know about the workload (fixed for the run).

use std::time::Duration;

use stcp_proto::{FRAME_HEADER_LEN, RECORD_OVERHEAD};

use stcp_proto::Mode;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub mode: Mode,
    /// Payload bytes of every request.
    pub payload: usize,
    /// Bytes of one request on the wire (header, payload, tag).
    pub record_len: usize,
    /// Requests in flight per connection at most.
    pub depth: u32,
    /// Per-request, connect and handshake timeout.
    pub timeout: Duration,
    /// Open loop (--rate): latency from the intended send time; no new request on completion.
    pub open_loop: bool,
    /// Open loop: connections of this thread (one request in `stride` goes to each).
    pub open_loop_stride: u64,
    /// Open loop: nanoseconds between two requests of this thread.
    pub open_loop_interval_ns: f64,
}

impl Settings {
    pub fn new(
        mode: Mode,
        payload: usize,
        depth: u32,
        timeout: Duration,
        thread_rate: Option<f64>,
        conns: usize,
    ) -> Settings {
        let record_len = match mode {
            Mode::Stcp => payload + RECORD_OVERHEAD,
            Mode::Tcp => payload + FRAME_HEADER_LEN,
        };
        Settings {
            mode,
            payload,
            record_len,
            depth,
            timeout,
            open_loop: thread_rate.is_some(),
            open_loop_stride: conns.max(1) as u64,
            open_loop_interval_ns: thread_rate.map_or(0.0, |r| 1e9 / r),
        }
    }
}
