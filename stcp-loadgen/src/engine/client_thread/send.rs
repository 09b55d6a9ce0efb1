//! Sending: the open loop's schedule, requests written into the out buffers as they have room and
//! sealed connection by connection, and the sends handed to the kernel (one per connection in
//! flight, the other buffer filling behind it).

use super::*;

impl ClientThread {
    pub(super) fn on_send(&mut self, d: &mut Driver, slot: usize, result: i32, now: Instant) {
        if self.conns[slot].has_ended() {
            return;
        }
        if result <= 0 {
            let why = if result == 0 {
                "send took no bytes"
            } else {
                errno_name(-result)
            };
            self.fail(d, slot, ErrorKind::Io, why);
            return;
        }
        if let Some(t) = self.tally.as_mut() {
            t.bytes_sent(result as usize);
        }
        // A buffer through frees room: a request still being written continues into it in this
        // turn's `seal_and_send` (`sent` marks the connection).
        if let Some((ptr, len)) = self.conns[slot].sent(result as usize, self.now) {
            self.push_send(d, slot, ptr, len);
        }
        let conn = &self.conns[slot];
        if conn.retired_eof && conn.sending.is_none() {
            self.recycle(d, slot, now);
        }
    }

    pub(super) fn push_send(&mut self, d: &mut Driver, slot: usize, ptr: *const u8, len: u32) {
        let Some(fd) = self.conns[slot].fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        // SAFETY: `ptr..ptr+len` lies in one of the connection's two `out` buffers (boxed,
        // allocated once, never resized). That buffer is marked as sending (`Connection::sending`)
        // and is neither written nor cleared until this send's completion is reaped in `on_send`
        // (a connection that ends meanwhile writes nothing more); at the end the connections go
        // to `Driver::shutdown`, which frees them only when no send is left in the kernel.
        let sqe = unsafe { ops::send(fd, ptr, len, self.token(Op::Send, slot)) };
        push(d, &sqe);
    }

    /// Open loop: queues every request whose intended send time has come, as depth allows.
    pub(super) fn schedule_open_loop(&mut self, now: Instant) {
        let Some(t) = self.tally.as_ref() else { return };
        if !t.accepting_requests() {
            return;
        }
        let (load_start, end) = (t.load_start, t.end());
        let s = &self.settings;
        for conn in self.conns.iter_mut().filter(|c| c.is_established()) {
            while !conn.in_flight.is_full() {
                let intended = conn.next_intended(s, load_start);
                if intended > now || intended >= end {
                    break;
                }
                conn.queue_request(intended);
                conn.scheduled += 1;
            }
        }
    }

    /// Writes the requests waiting to go out into the filling buffers as far as they have room,
    /// seals the new records, and starts the sends (stamping the requests whose first byte goes
    /// out), connection by connection. Requests do not wait for the whole thread's crypto: once
    /// `OVERLAP_BYTES` have been written and sealed since the last submission, the sends started
    /// so far are submitted, so the kernel moves them while the rest is prepared. A connection
    /// that just handed a buffer to the kernel and still has a request to write gets a second
    /// round, so its other buffer is full and sealed by the time the first send completes; the
    /// rest follows after each send completion.
    pub(super) fn seal_and_send(&mut self, d: &mut Driver) {
        let mut since_submit = 0;
        for _round in 0..2 {
            let mut again = false;
            for slot in 0..self.conns.len() {
                if !self.conns[slot].wants_send {
                    continue;
                }
                let conn = &mut self.conns[slot];
                conn.wants_send = false;
                conn.drain_tls();
                if conn.is_established() {
                    if let Err(kind) = conn.write_requests(&self.settings) {
                        self.fail(d, slot, kind, "encrypting a request failed");
                        continue;
                    }
                }
                if let Some((sealer, records)) = conn.seal_job() {
                    since_submit += records.len();
                    if sealer.seal_all(records).is_err() {
                        self.fail(d, slot, ErrorKind::Io, "sealing a request failed");
                        continue;
                    }
                    conn.sealed_all();
                }
                if conn.has_ended() {
                    continue;
                }
                if let Some((ptr, len)) = conn.start_send(Instant::now()) {
                    if self.settings.mode != Mode::Stcp {
                        since_submit += len as usize;
                    }
                    if conn.writing() {
                        conn.wants_send = true;
                        again = true;
                    }
                    self.push_send(d, slot, ptr, len);
                }
                if since_submit >= OVERLAP_BYTES && slot + 1 < self.conns.len() {
                    // Ring trouble shows at the next wait, which reports it.
                    let _ = d.submit();
                    since_submit = 0;
                }
            }
            if !again {
                break;
            }
        }
    }
}

/// Bytes written and sealed after which the sends started so far are submitted, if more
/// connections remain to be prepared.
const OVERLAP_BYTES: usize = 32 * 1024;
