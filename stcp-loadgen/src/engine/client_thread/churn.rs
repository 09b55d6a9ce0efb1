//! Churn (`--requests-per-conn N`): a connection that has had its N requests answered closes
//! cleanly, and a new connection connects and handshakes in its slot. The client closes first
//! (STCP: its Close record; TCP: its FIN) and waits for the server's FIN, so the server ends
//! every connection as a clean close, and the TIME_WAIT state stays on the server's side. The
//! slot's buffers are kept: a new connection costs a socket and a handshake, no allocation.
//!
//! Closed loop: the slot connects again at once. Open loop (`--rate` counts new connections per
//! second): new connections start on the thread's schedule, each in a free slot; one that finds
//! no free slot waits for one, and its connect latency counts from its intended start.

use super::*;

impl ClientThread {
    /// Starts the close of every connection whose requests are all answered, once nothing of it
    /// is in the kernel's send path.
    pub(super) fn retire_finished(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let conn = &mut self.conns[slot];
            if !conn.retire_ready || conn.sending.is_some() || !conn.is_established() {
                continue;
            }
            conn.retire_ready = false;
            match self.settings.mode {
                Mode::Stcp => conn.queue_close(),
                // TLS runs are refused at start (`RunArgs::validate`) until the TLS client lands.
                Mode::Tcp | Mode::Tls => {
                    if let Some(fd) = conn.fd.as_ref() {
                        shutdown_write(fd);
                    }
                }
            }
            conn.retiring = true;
            // The server's FIN must come within the timeout (`check_timeouts`).
            conn.setup_deadline = now + self.settings.timeout;
        }
    }

    /// The server's FIN on a connection we are closing: a clean end. The slot is reused once no
    /// send of it is left in the kernel.
    pub(super) fn retired_eof(&mut self, d: &mut Driver, slot: usize, now: Instant) {
        let conn = &mut self.conns[slot];
        conn.retired_eof = true;
        if conn.sending.is_none() {
            self.recycle(d, slot, now);
        }
    }

    /// Closes the socket of a connection that ended cleanly and starts the next one in its slot
    /// (closed loop), or frees the slot for the schedule (open loop). No operation of the old
    /// connection is in the kernel: its multishot receive ended with the FIN, and no send is in
    /// flight.
    pub(super) fn recycle(&mut self, d: &mut Driver, slot: usize, now: Instant) {
        self.conns[slot].reset(&self.settings);
        self.recycled += 1;
        let accepting =
            !self.closing && self.tally.as_ref().is_some_and(|t| t.accepting_requests());
        if !accepting {
            return;
        }
        if self.settings.churn_interval_ns.is_some() {
            self.free.push(slot);
            self.schedule_churn(d, now);
        } else {
            self.start_connect(d, slot, now);
        }
    }

    /// When the thread's next new connection is meant to start (open-loop churn).
    pub(super) fn next_churn_intended(&self, load_start: Instant) -> Instant {
        let interval = self.settings.churn_interval_ns.unwrap_or(0.0);
        load_start + Duration::from_nanos((self.next_conn as f64 * interval) as u64)
    }

    /// Open-loop churn: starts every new connection whose time has come, in free slots.
    pub(super) fn schedule_churn(&mut self, d: &mut Driver, now: Instant) {
        if self.settings.churn_interval_ns.is_none() || self.closing {
            return;
        }
        let Some(t) = self.tally.as_ref() else { return };
        if !t.accepting_requests() {
            return;
        }
        let (load_start, end) = (t.load_start, t.end());
        while let Some(&slot) = self.free.last() {
            let intended = self.next_churn_intended(load_start);
            if intended > now || intended >= end {
                break;
            }
            self.free.pop();
            self.next_conn += 1;
            self.start_connect(d, slot, now);
            // Latency counts from when the connection was meant to start (no coordinated
            // omission when slots run short).
            self.conns[slot].started = intended;
        }
    }
}

/// Shuts the write side of a socket: our FIN, after every byte sent.
fn shutdown_write(fd: &OwnedFd) {
    // SAFETY: plain shutdown(2) on a descriptor this connection owns; no memory is passed.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
}
