//! Sending: the open loop's schedule, requests written into the out buffers as they have room and
//! sealed in one batch per round, and the sends handed to the kernel (one per connection in
//! flight, the other buffer filling behind it).

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
        // A buffer through frees room: a request still being written continues into it in this
        // turn's `seal_and_send` (`sent` marks the connection).
        if let Some((ptr, len)) = self.conns[slot].sent(result as usize, self.now) {
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
                conn.queue_request(intended);
                conn.scheduled += 1;
            }
        }
    }

    /// Writes the requests waiting to go out into the filling buffers as far as they have room,
    /// seals every new record in one batch, and starts the sends (stamping the requests whose
    /// first byte goes out). A connection that just handed a buffer to the kernel and still has a
    /// request to write gets a second round, so its other buffer is full and sealed by the time
    /// the first send completes; the rest follows after each send completion.
    pub(super) fn seal_and_send(&mut self, d: &mut Driver) {
        for _round in 0..2 {
            let s = &self.settings;
            for conn in self.conns.iter_mut().filter(|c| c.wants_send) {
                if conn.is_established() {
                    conn.write_requests(s);
                }
            }
            if self.settings.mode == Mode::Stcp {
                self.seal_batch(d);
            }
            let handed_over = Instant::now();
            let mut again = false;
            for slot in 0..self.conns.len() {
                let conn = &mut self.conns[slot];
                if !conn.wants_send {
                    continue;
                }
                conn.wants_send = false;
                if conn.has_ended() {
                    continue;
                }
                if let Some((ptr, len)) = conn.start_send(handed_over) {
                    if conn.writing() {
                        conn.wants_send = true;
                        again = true;
                    }
                    self.push_send(d, slot, ptr, len);
                }
            }
            if !again {
                break;
            }
        }
    }

    /// Seals, in one batch, every record written since the last seal.
    fn seal_batch(&mut self, d: &mut Driver) {
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
}
