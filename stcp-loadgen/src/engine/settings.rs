//! What every connection of a client thread needs to know about the workload (fixed for the run),
//! and the sizes of a connection's buffers, which follow from it.

use std::time::Duration;

use stcp_proto::{
    sealed_frame_len, FRAME_HEADER_LEN, HANDSHAKE_MAX_LEN, MAX_RECORD_LEN, RECORD_HEADER_LEN,
    TAG_LEN,
};

use stcp_proto::Mode;

/// Most bytes one out buffer holds, and the in buffer: sixteen full records (256 KiB of payload,
/// 262 528 bytes). Requests and echoes stream through the buffers record by record (TCP: piece
/// by piece), so a frame of any size costs a connection at most three of these (about 770 KiB).
/// One send of a full buffer spreads the per-send cost (one submission, one completion) over
/// sixteen records, and the two out buffers keep the kernel fed while the next one is written
/// and sealed. Smaller workloads (`depth` whole requests fit) get buffers of exactly their size,
/// as before.
pub(super) const STREAM_WINDOW: usize = 16 * MAX_RECORD_LEN;

/// Bytes of the server's Close record.
const CLOSE_RECORD_LEN: usize = RECORD_HEADER_LEN + TAG_LEN;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub mode: Mode,
    /// Payload bytes of every request.
    pub payload: usize,
    /// Bytes of one request, and of its echo, on the wire: `sealed_frame_len(payload)` in STCP
    /// (every record's header and tag), `4 + payload` in TCP (the frame header).
    pub wire_len: usize,
    /// Requests in flight per connection at most.
    pub depth: u32,
    /// Capacity of each of a connection's two out buffers (see [`out_capacity`]).
    pub out_capacity: usize,
    /// Capacity of a connection's in buffer (see [`in_capacity`]).
    pub in_capacity: usize,
    /// Per-request, connect and handshake timeout.
    pub timeout: Duration,
    /// Open loop (--rate): latency from the intended send time; no new request on completion.
    pub open_loop: bool,
    /// Open loop: connections of this thread (one request in `stride` goes to each).
    pub open_loop_stride: u64,
    /// Open loop: nanoseconds between two requests of this thread.
    pub open_loop_interval_ns: f64,
    /// Churn (--requests-per-conn N): each connection sends N requests, closes cleanly, and a
    /// new connection takes its place. None: connections persist for the whole run.
    pub requests_per_conn: Option<u64>,
    /// Churn in open loop (--rate with --requests-per-conn): nanoseconds between two new
    /// connections of this thread; the requests of a connection then go back to back.
    pub churn_interval_ns: Option<f64>,
}

impl Settings {
    pub fn new(
        mode: Mode,
        payload: usize,
        depth: u32,
        timeout: Duration,
        thread_rate: Option<f64>,
        conns: usize,
        requests_per_conn: Option<u64>,
    ) -> Settings {
        // With churn the rate counts new connections, not requests.
        let churn = requests_per_conn.is_some();
        let request_rate = thread_rate.filter(|_| !churn);
        Settings {
            mode,
            payload,
            wire_len: wire_len(mode, payload),
            depth,
            out_capacity: out_capacity(mode, payload, depth),
            in_capacity: in_capacity(mode, payload, depth),
            timeout,
            open_loop: request_rate.is_some(),
            open_loop_stride: conns.max(1) as u64,
            open_loop_interval_ns: request_rate.map_or(0.0, |r| 1e9 / r),
            requests_per_conn,
            churn_interval_ns: thread_rate.filter(|_| churn).map(|r| 1e9 / r),
        }
    }

    /// Requests each connection of this workload sends before it is replaced (churn), or None.
    pub fn churn(&self) -> Option<u64> {
        self.requests_per_conn
    }

    /// Echo bytes of one connection worth receiving in one turn: what it has in flight, at most
    /// a [`STREAM_WINDOW`] (sizes the thread's receive buffer ring).
    pub fn receive_window(&self) -> usize {
        (self.depth as usize)
            .saturating_mul(self.wire_len)
            .min(STREAM_WINDOW)
    }
}

/// Bytes of one request on the wire in `mode`.
pub(super) fn wire_len(mode: Mode, payload: usize) -> usize {
    match mode {
        Mode::Stcp => sealed_frame_len(payload),
        Mode::Tcp | Mode::Tls => FRAME_HEADER_LEN + payload,
    }
}

/// Capacity of one out buffer: `depth` whole requests, at most [`STREAM_WINDOW`], and at least the
/// client's first handshake frame. Never below the largest record of the workload (what STCP
/// writes whole): that is a whole request up to 16 KiB of payload, and [`MAX_RECORD_LEN`] above,
/// which the window exceeds. Not a flat [`MAX_RECORD_LEN`] floor: small requests over many
/// connections would then cost 16 KiB a buffer for nothing.
pub(super) fn out_capacity(mode: Mode, payload: usize, depth: u32) -> usize {
    let capacity = (depth as usize)
        .saturating_mul(wire_len(mode, payload))
        .clamp(HANDSHAKE_MAX_LEN + FRAME_HEADER_LEN, STREAM_WINDOW);
    debug_assert!(mode == Mode::Tcp || capacity >= largest_record(payload));
    capacity
}

/// Capacity of the in buffer (STCP; TCP echoes are checked as they stream in and need none):
/// `depth` whole echoes and the server's Close record, at most [`STREAM_WINDOW`] (a full buffer
/// is opened and verified at once to make room, see `Connection::absorb_records`), at least the
/// handshake reply. Like the out buffers, never below the workload's largest record.
pub(super) fn in_capacity(mode: Mode, payload: usize, depth: u32) -> usize {
    match mode {
        Mode::Stcp => {
            let capacity = (depth as usize)
                .saturating_mul(wire_len(mode, payload))
                .saturating_add(CLOSE_RECORD_LEN)
                .clamp(HANDSHAKE_MAX_LEN + FRAME_HEADER_LEN, STREAM_WINDOW);
            debug_assert!(capacity >= largest_record(payload));
            capacity
        }
        Mode::Tcp | Mode::Tls => 0,
    }
}

/// The largest record an STCP request of `payload` bytes is carried by.
pub(super) fn largest_record(payload: usize) -> usize {
    sealed_frame_len(payload).min(MAX_RECORD_LEN)
}

/// Bytes of buffers one connection allocates (two out buffers and the in buffer).
pub fn buffer_bytes(mode: Mode, payload: usize, depth: u32) -> usize {
    2 * out_capacity(mode, payload, depth) + in_capacity(mode, payload, depth)
}
