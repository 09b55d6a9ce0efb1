//! Sending: the open loop's schedule, every request of a turn sealed in one batch, and the sends
//! handed to the kernel (one per connection in flight, the rest queued behind it).

use super::*;

impl ClientThread {
    pub(super) fn on_send(&mut self, d: &mut Driver, slot: usize, result: i32) {
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
        if let Some((ptr, len)) = self.conns[slot].sent(result as usize) {
            self.push_send(d, slot, ptr, len);
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
                conn.queue_request(s, intended);
                conn.scheduled += 1;
            }
        }
    }

    /// Seals, in one batch, every record queued this turn, stamps the requests and starts sends.
    pub(super) fn seal_and_send(&mut self, d: &mut Driver) {
        if self.settings.mode == Mode::Stcp {
            let slots = &mut self.batch_slots;
            let failures = &mut self.batch_failures;
            slots.clear();
            failures.clear();
            stcp_proto::seal_batch(
                self.conns
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, c)| c.wants_send)
                    .filter_map(|(slot, c)| {
                        let job = c.seal_job()?;
                        slots.push(slot as u32);
                        Some(job)
                    }),
                |job, result| {
                    if result.is_err() {
                        failures.push(job);
                    }
                },
            );
            for j in 0..self.batch_slots.len() {
                let slot = self.batch_slots[j] as usize;
                if self.batch_failures.contains(&j) {
                    self.fail(d, slot, ErrorKind::Io, "sealing a request failed");
                } else {
                    self.conns[slot].sealed_all();
                }
            }
        }
        let handed_over = Instant::now();
        for slot in 0..self.conns.len() {
            let conn = &mut self.conns[slot];
            if !conn.wants_send {
                continue;
            }
            conn.wants_send = false;
            if conn.has_ended() {
                continue;
            }
            conn.stamp(handed_over);
            if let Some((ptr, len)) = conn.start_send() {
                self.push_send(d, slot, ptr, len);
            }
        }
    }
}
