//! One persistent client connection: its state, its buffers (allocated once, never grown, sized
//! independently of the payload), the requests it has in flight, and the byte-level work of
//! writing requests and checking echoes. No I/O happens here; the client thread's event loop
//! moves the bytes.
//!
//! Requests and echoes stream: a request is written into the out buffers a record at a time
//! (TCP: as many bytes as fit) as the buffers have room, and its echo is verified a record at a
//! time (TCP: as bytes arrive), so no frame is ever held whole, whatever its size.

use std::os::fd::OwnedFd;
use std::time::Instant;

use stcp_proto::record::FrameRecords;
use stcp_proto::{
    frame_records, ClientHandshake, Codec, Framing, RecordHeader, RecordOpener, RecordSealer,
    RecordType, FRAME_HEADER_LEN, MAX_FRAME_LEN, RECORD_HEADER_LEN, TAG_LEN,
};

mod in_flight;

pub(in crate::engine) use in_flight::{InFlight, InFlightQueue};

use super::settings::Settings;
use super::tally::Tally;
use crate::errors::ErrorKind;
use crate::payload;
use stcp_proto::Mode;

/// Bytes of a Close record (no payload).
const CLOSE_RECORD_LEN: usize = RECORD_HEADER_LEN + TAG_LEN;

/// Where a connection is in its life.
pub(super) enum State {
    /// Its connect has not been issued yet (ramp by --connect-rate).
    NotStarted,
    /// TCP connect in flight.
    Connecting,
    /// STCP: first handshake frame sent, waiting for the server's reply.
    Handshaking(Box<ClientHandshake>),
    /// Ready for requests.
    Established,
    /// Failed (counted once); its operations are being cancelled.
    Failed,
    /// Ended cleanly by the server's authenticated Close record (not an error); its operations
    /// are being cancelled.
    Closed,
}

/// Bytes waiting to be sent, or being sent. A connection has two: the kernel reads one while
/// requests are written into the other.
pub(super) struct OutBuf {
    pub buf: Box<[u8]>,
    /// Bytes written.
    pub len: usize,
    /// Bytes sealed (STCP) or ready (TCP), a prefix of `len`; only sealed bytes are sent.
    pub sealed: usize,
    /// Bytes the kernel has already taken (while this buffer is being sent).
    pub sent: usize,
    /// Requests whose first byte is in this buffer: stamped with their send time when the
    /// buffer is handed to the kernel.
    starts: usize,
}

impl OutBuf {
    fn new(capacity: usize) -> OutBuf {
        OutBuf {
            buf: vec![0; capacity].into_boxed_slice(),
            len: 0,
            sealed: 0,
            sent: 0,
            starts: 0,
        }
    }
    fn clear(&mut self) {
        self.len = 0;
        self.sealed = 0;
        self.sent = 0;
        self.starts = 0;
    }
}

/// The request being written into the out buffers. Requests are written strictly in order, one
/// at a time (the records of two frames never interleave), a piece at a time.
struct SendCursor {
    /// Its sequence number; equal to `Connection::next_seq` when every queued request is written.
    seq: u64,
    /// STCP: its records not written yet. The next one is written only when it fits whole.
    records: FrameRecords,
    /// TCP: bytes of its frame (header and payload) written.
    written: usize,
}

impl SendCursor {
    fn new(payload: usize) -> SendCursor {
        SendCursor {
            seq: 0,
            records: frame_records(payload),
            written: 0,
        }
    }

    /// The request is written whole: on to the next one.
    fn next_request(&mut self, payload: usize) {
        self.seq += 1;
        self.records = frame_records(payload);
        self.written = 0;
    }
}

/// Progress through the echo currently arriving in TCP mode, checked as it streams in.
#[derive(Default)]
struct FrameProgress {
    header: [u8; FRAME_HEADER_LEN],
    header_got: usize,
    payload_got: usize,
}

pub(super) struct Connection {
    /// Run-wide connection number: part of every payload this connection sends.
    pub id: u32,
    /// Generation of this slot, in every token: completions of operations issued before the
    /// connection ended are recognised and ignored.
    pub gen: u32,
    pub fd: Option<OwnedFd>,
    pub state: State,
    /// When the connect was issued.
    pub started: Instant,
    /// Connect or handshake must be done by then.
    pub setup_deadline: Instant,
    pub sealer: Option<RecordSealer>,
    pub opener: Option<RecordOpener>,
    pub out: [OutBuf; 2],
    /// Which `out` buffer new requests are written into.
    fill: usize,
    /// Which `out` buffer the kernel is reading, if any (never `fill`).
    pub sending: Option<usize>,
    /// The request being written out.
    tx: SendCursor,
    /// Received bytes not yet consumed (STCP records, handshake reply).
    pub inbuf: Box<[u8]>,
    pub in_len: usize,
    /// Bytes at the front of `inbuf` forming whole records, ready to open.
    pub in_complete: usize,
    /// STCP: the records expected next in the echo stream, from the one at `in_complete` to the
    /// end of its frame (every echo's records are its request's, header for header).
    rx_expected: FrameRecords,
    /// STCP: echo frames whose final record is among those at the front of `inbuf`, not
    /// verified yet.
    rx_assembled: usize,
    /// STCP: payload bytes of the oldest request's echo verified so far.
    rx_verified: usize,
    frame: FrameProgress,
    pub in_flight: InFlightQueue,
    next_seq: u64,
    /// Open loop: this connection's place among the thread's connections (its schedule offset).
    pub open_loop_slot: u64,
    /// Open loop: how many requests this connection has been scheduled so far.
    pub scheduled: u64,
    /// Marks for this turn's batches (avoid scanning twice, never allocate).
    pub wants_open: bool,
    pub wants_send: bool,
    /// Multishot receive armed.
    pub recv_armed: bool,
    /// The server's authenticated Close record was opened: the server ended this connection.
    pub server_closed: bool,
    /// A whole Close record is among the records waiting to be opened.
    close_received: bool,
    /// The server's FIN arrived while whole records were still waiting to be opened this turn
    /// (judged after they are: a Close among them makes it a clean end).
    pub peer_eof: bool,
    /// Churn: this connection has had all its requests answered; it closes once nothing of it
    /// is being sent.
    pub retire_ready: bool,
    /// Churn: our close is on its way (STCP: the Close record; TCP: our FIN); the server's FIN
    /// ends the connection cleanly, and a new one takes the slot.
    pub retiring: bool,
    /// Churn: the server's FIN came while a send was still in the kernel; the slot is reused
    /// once that send completes.
    pub retired_eof: bool,
    /// When the connect completed (connect latency ends, handshake begins).
    pub connected: Instant,
}

impl Connection {
    pub fn new(id: u32, open_loop_slot: u64, s: &Settings, now: Instant) -> Connection {
        Connection {
            id,
            gen: 0,
            fd: None,
            state: State::NotStarted,
            started: now,
            setup_deadline: now,
            sealer: None,
            opener: None,
            out: [OutBuf::new(s.out_capacity), OutBuf::new(s.out_capacity)],
            fill: 0,
            sending: None,
            tx: SendCursor::new(s.payload),
            inbuf: vec![0; s.in_capacity].into_boxed_slice(),
            in_len: 0,
            in_complete: 0,
            rx_expected: frame_records(s.payload),
            rx_assembled: 0,
            rx_verified: 0,
            frame: FrameProgress::default(),
            in_flight: InFlightQueue::new(s.depth as usize, now),
            next_seq: 0,
            open_loop_slot,
            scheduled: 0,
            wants_open: false,
            wants_send: false,
            recv_armed: false,
            server_closed: false,
            close_received: false,
            peer_eof: false,
            retire_ready: false,
            retiring: false,
            retired_eof: false,
            connected: now,
        }
    }

    /// Churn: makes the slot ready for a new connection after a clean close, keeping its
    /// buffers (allocated once) and its place in the run. The caller has closed the socket and
    /// knows no operation of it is left in the kernel; the generation moves on all the same, so
    /// any late completion is ignored.
    pub fn reset(&mut self, s: &Settings) {
        self.gen = stcp_engine::next_gen(self.gen);
        self.fd = None;
        self.state = State::NotStarted;
        self.sealer = None;
        self.opener = None;
        for out in &mut self.out {
            out.clear();
        }
        self.fill = 0;
        self.sending = None;
        self.tx = SendCursor::new(s.payload);
        self.in_len = 0;
        self.in_complete = 0;
        self.rx_expected = frame_records(s.payload);
        self.rx_assembled = 0;
        self.rx_verified = 0;
        self.frame = FrameProgress::default();
        while self.in_flight.pop().is_some() {}
        self.next_seq = 0;
        self.wants_open = false;
        self.wants_send = false;
        self.recv_armed = false;
        self.server_closed = false;
        self.close_received = false;
        self.peer_eof = false;
        self.retire_ready = false;
        self.retiring = false;
        self.retired_eof = false;
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// Connecting, or (STCP) handshaking.
    pub fn is_setting_up(&self) -> bool {
        matches!(self.state, State::Connecting | State::Handshaking(_))
    }

    /// Failed, or closed by the server: the connection takes no further part in the run.
    pub fn has_ended(&self) -> bool {
        matches!(self.state, State::Failed | State::Closed)
    }

    /// The buffer new bytes are written into (never the one the kernel is reading).
    fn filling(&mut self) -> &mut OutBuf {
        &mut self.out[self.fill]
    }

    /// Queues raw bytes to send (the handshake's first frame).
    pub fn queue_bytes(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        let out = self.filling();
        let end = out.len + bytes.len();
        let dst = out.buf.get_mut(out.len..end).ok_or(ErrorKind::Handshake)?;
        dst.copy_from_slice(bytes);
        out.len = end;
        out.sealed = end;
        self.wants_send = true;
        Ok(())
    }

    /// Puts the next request in flight. Its bytes are written later, as the out buffers have
    /// room ([`Connection::write_requests`]).
    pub fn queue_request(&mut self, intended: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push(InFlight {
            seq,
            intended,
            sent: intended,
        });
        self.wants_send = true;
    }

    /// Some queued request is not written whole yet.
    pub fn writing(&self) -> bool {
        self.tx.seq < self.next_seq
    }

    /// Writes the queued requests into the filling buffer as far as it has room, in order: STCP
    /// a whole record at a time (header, payload, room for the tag; sealed by the turn's batch),
    /// TCP any number of bytes (ready at once). What does not fit waits until a buffer comes back
    /// from the kernel.
    pub fn write_requests(&mut self, s: &Settings) {
        let id = self.id;
        let out = &mut self.out[self.fill];
        let tx = &mut self.tx;
        while tx.seq < self.next_seq {
            match s.mode {
                Mode::Stcp => {
                    let mut rest = tx.records.clone();
                    let Some((header, offset)) = rest.next() else {
                        // Not reached: the cursor moves on at a frame's final record.
                        tx.next_request(s.payload);
                        continue;
                    };
                    let len = header.record_len();
                    let Some(record) = out.buf.get_mut(out.len..out.len + len) else {
                        break;
                    };
                    let h = header.write(record);
                    payload::fill_at(&mut record[h..h + header.payload_len], id, tx.seq, offset);
                    out.len += len;
                    if offset == 0 {
                        out.starts += 1;
                    }
                    if header.kind.ends_frame() {
                        tx.next_request(s.payload);
                    } else {
                        tx.records = rest;
                    }
                }
                Mode::Tcp | Mode::Tls => {
                    let n = (s.wire_len - tx.written).min(out.buf.len() - out.len);
                    if n == 0 {
                        break;
                    }
                    let part = &mut out.buf[out.len..out.len + n];
                    write_frame_part(part, s.payload, id, tx.seq, tx.written);
                    if tx.written == 0 {
                        out.starts += 1;
                    }
                    out.len += n;
                    out.sealed = out.len;
                    tx.written += n;
                    if tx.written == s.wire_len {
                        tx.next_request(s.payload);
                    }
                }
            }
        }
    }

    /// Queues an authenticated Close record (STCP) so the server sees an orderly end. Not while a
    /// request is still being written (a Close may not cut a frame): the connection then just
    /// ends when its operations are cancelled.
    pub fn queue_close(&mut self) {
        if self.sealer.is_none() || self.writing() || self.retiring {
            return;
        }
        let out = self.filling();
        let Some(record) = out.buf.get_mut(out.len..out.len + CLOSE_RECORD_LEN) else {
            return;
        };
        stcp_proto::write_record_header(record, RecordType::Close, 0);
        out.len += CLOSE_RECORD_LEN;
        self.wants_send = true;
    }

    /// The unsealed records of the filling buffer, with the sealer to seal them.
    pub fn seal_job(&mut self) -> Option<(&mut RecordSealer, &mut [u8])> {
        let out = &mut self.out[self.fill];
        let sealer = self.sealer.as_mut()?;
        (out.sealed < out.len).then(|| (sealer, &mut out.buf[out.sealed..out.len]))
    }

    /// After a successful seal of everything written so far.
    pub fn sealed_all(&mut self) {
        let out = self.filling();
        out.sealed = out.len;
    }

    /// If nothing is being sent and the filling buffer holds only sealed bytes, hands it to the
    /// kernel (returns the range to send) and fills the other one from now on. The requests whose
    /// first byte is in it are stamped with `now`: their latency starts here (closed loop).
    pub fn start_send(&mut self, now: Instant) -> Option<(*const u8, u32)> {
        let out = &mut self.out[self.fill];
        if self.sending.is_some() || out.len == 0 || out.sealed < out.len {
            return None;
        }
        self.in_flight.stamp_next(out.starts, now);
        out.starts = 0;
        let range = (out.buf.as_ptr(), out.len as u32);
        self.sending = Some(self.fill);
        self.fill = 1 - self.fill;
        Some(range)
    }

    /// A send completed with `n` bytes taken: returns the remainder still to send (a short send),
    /// or, once the buffer is through, starts sending the other one if it is ready. The buffer
    /// through is free again: a request still being written continues into it (`wants_send`).
    pub fn sent(&mut self, n: usize, now: Instant) -> Option<(*const u8, u32)> {
        let i = self.sending?;
        let out = &mut self.out[i];
        out.sent += n;
        if out.sent < out.len {
            let rest = &out.buf[out.sent..out.len];
            return Some((rest.as_ptr(), rest.len() as u32));
        }
        out.clear();
        self.sending = None;
        if self.writing() {
            self.wants_send = true;
        }
        self.start_send(now)
    }

    /// Received bytes of the handshake reply. `Ok(Some(frame_payload_len))` when the whole reply
    /// frame is in `inbuf[4..]`.
    pub fn absorb_handshake(&mut self, data: &[u8]) -> Result<Option<usize>, ErrorKind> {
        let end = self.in_len + data.len();
        self.inbuf
            .get_mut(self.in_len..end)
            .ok_or(ErrorKind::Handshake)?
            .copy_from_slice(data);
        self.in_len = end;
        if self.in_len < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let split = Codec::new(Framing::Handshake, 0)
            .split(&self.inbuf[..self.in_len])
            .map_err(|_| ErrorKind::Handshake)?;
        match (split.units, split.whole.cmp(&self.in_len)) {
            (0, _) => Ok(None),
            (1, std::cmp::Ordering::Equal) => Ok(Some(split.whole - FRAME_HEADER_LEN)),
            // The server may not speak before the client's first request.
            _ => Err(ErrorKind::Handshake),
        }
    }

    /// Received bytes of STCP records: buffers them and finds the whole records at the front,
    /// each header checked as soon as it is here ([`Connection::assemble`]). When the buffer is
    /// full with bytes still to come, the whole records in it are opened and verified at once
    /// (a batch of one) to make room: the buffer never grows, whatever the frame size. A Close
    /// record is assembled and opened like the others, so only an authentic one ends the
    /// connection cleanly; nothing may follow it.
    pub fn absorb_records(
        &mut self,
        mut data: &[u8],
        now: Instant,
        s: &Settings,
        tally: &mut Tally,
    ) -> Result<(), ErrorKind> {
        if self.opener.is_none() {
            return Err(ErrorKind::Io);
        }
        while !data.is_empty() {
            if self.close_received {
                // Bytes after the server's Close record: nothing may follow it.
                return Err(ErrorKind::Verify);
            }
            let room = self.inbuf.len() - self.in_len;
            if room == 0 {
                // Cannot be without whole records: the buffer holds the largest record.
                let (opener, job) = self.open_job().ok_or(ErrorKind::Verify)?;
                opener.open_all(job).map_err(|_| ErrorKind::Verify)?;
                self.consume_opened(now, s, tally)?;
                continue;
            }
            let n = room.min(data.len());
            self.inbuf[self.in_len..self.in_len + n].copy_from_slice(&data[..n]);
            self.in_len += n;
            data = &data[n..];
            self.assemble(s)?;
        }
        if self.in_complete > 0 {
            self.wants_open = true;
        }
        Ok(())
    }

    /// Walks the records after `in_complete`, checking each header against the record the
    /// request had (same type, same payload length, same frame length for a `Begin`) the moment
    /// its bytes are here, before the rest of the record is buffered; moves `in_complete` past
    /// every whole one. An echo record with nothing in flight to answer, any other header, a
    /// Close inside a frame or anything after a Close is [`ErrorKind::Verify`].
    fn assemble(&mut self, s: &Settings) -> Result<(), ErrorKind> {
        loop {
            let rest = &self.inbuf[self.in_complete..self.in_len];
            let Some(word) = rest.first_chunk::<RECORD_HEADER_LEN>() else {
                return Ok(());
            };
            let (kind, payload_len) =
                RecordHeader::peek(*word, s.payload).map_err(|_| ErrorKind::Verify)?;
            let mut after = self.rx_expected.clone();
            let Some((expected, offset)) = after.next() else {
                return Err(ErrorKind::Verify);
            };
            if kind == RecordType::Close {
                if offset != 0 || payload_len != 0 {
                    // The server's Close may come between echoes only.
                    return Err(ErrorKind::Verify);
                }
                if rest.len() < CLOSE_RECORD_LEN {
                    return Ok(());
                }
                self.in_complete += CLOSE_RECORD_LEN;
                self.close_received = true;
                return match rest.len() > CLOSE_RECORD_LEN {
                    true => Err(ErrorKind::Verify),
                    false => Ok(()),
                };
            }
            if offset == 0 && self.rx_assembled >= self.in_flight.len() {
                // The start of an echo with no request left in flight to answer.
                return Err(ErrorKind::Verify);
            }
            if kind != expected.kind || payload_len != expected.payload_len {
                return Err(ErrorKind::Verify);
            }
            if rest.len() < expected.header_len() {
                return Ok(());
            }
            // The whole header (a Begin's frame length too) is here.
            if RecordHeader::parse(rest, s.payload) != Ok(expected) {
                return Err(ErrorKind::Verify);
            }
            if rest.len() < expected.record_len() {
                return Ok(());
            }
            self.in_complete += expected.record_len();
            if expected.kind.ends_frame() {
                self.rx_expected = frame_records(s.payload);
                self.rx_assembled += 1;
            } else {
                self.rx_expected = after;
            }
        }
    }

    /// The whole records at the front of `inbuf`, for `open_batch`.
    pub fn open_job(&mut self) -> Option<(&mut RecordOpener, &mut [u8])> {
        let opener = self.opener.as_mut()?;
        (self.in_complete > 0).then(|| (opener, &mut self.inbuf[..self.in_complete]))
    }

    /// After the records at the front were opened in place: checks each record's payload against
    /// the oldest request at its offset, completes a request at its final record (`Data` or
    /// `End`), and moves any partial record to the front. The headers were checked as the
    /// records arrived and are authentic now (they are the records' associated data).
    pub fn consume_opened(
        &mut self,
        now: Instant,
        s: &Settings,
        tally: &mut Tally,
    ) -> Result<(), ErrorKind> {
        let mut at = 0;
        while at < self.in_complete {
            let record = &self.inbuf[at..self.in_complete];
            let header =
                RecordHeader::parse(record, MAX_FRAME_LEN).map_err(|_| ErrorKind::Verify)?;
            at += header.record_len();
            if header.kind == RecordType::Close {
                // The server's Close record, opened (authenticated) with the records before it;
                // `assemble` let nothing follow it.
                self.server_closed = true;
                break;
            }
            let front = self.in_flight.front().copied().ok_or(ErrorKind::Verify)?;
            let payload = record
                .get(header.header_len()..header.header_len() + header.payload_len)
                .ok_or(ErrorKind::Verify)?;
            payload::verify_at(payload, self.id, front.seq, self.rx_verified)
                .map_err(|_| ErrorKind::Verify)?;
            self.rx_verified += header.payload_len;
            if header.kind.ends_frame() {
                if self.rx_verified != s.payload {
                    return Err(ErrorKind::Verify);
                }
                self.rx_verified = 0;
                self.rx_assembled = self.rx_assembled.saturating_sub(1);
                self.complete_front(now, s, tally);
            }
        }
        self.inbuf.copy_within(self.in_complete..self.in_len, 0);
        self.in_len -= self.in_complete;
        self.in_complete = 0;
        Ok(())
    }

    /// Received bytes of plain TCP echo frames: checked as they stream in, without buffering.
    pub fn absorb_frames(
        &mut self,
        mut data: &[u8],
        now: Instant,
        s: &Settings,
        tally: &mut Tally,
    ) -> Result<(), ErrorKind> {
        while !data.is_empty() {
            let front = self.in_flight.front().copied().ok_or(ErrorKind::Verify)?;
            let f = &mut self.frame;
            if f.header_got < FRAME_HEADER_LEN {
                let n = (FRAME_HEADER_LEN - f.header_got).min(data.len());
                f.header[f.header_got..f.header_got + n].copy_from_slice(&data[..n]);
                f.header_got += n;
                data = &data[n..];
                if f.header_got == FRAME_HEADER_LEN
                    && Codec::new(Framing::Frames, s.payload).unit_len(f.header) != Ok(s.wire_len)
                {
                    return Err(ErrorKind::Verify);
                }
                if f.header_got < FRAME_HEADER_LEN {
                    continue;
                }
            }
            let n = (s.payload - f.payload_got).min(data.len());
            payload::verify_at(&data[..n], self.id, front.seq, f.payload_got)
                .map_err(|_| ErrorKind::Verify)?;
            f.payload_got += n;
            data = &data[n..];
            if f.payload_got == s.payload {
                self.frame = FrameProgress::default();
                self.complete_front(now, s, tally);
            }
        }
        Ok(())
    }

    /// The oldest request's echo arrived whole and correct.
    fn complete_front(&mut self, now: Instant, s: &Settings, tally: &mut Tally) {
        let Some(done) = self.in_flight.pop() else {
            return;
        };
        let from = if s.open_loop {
            done.intended
        } else {
            done.sent
        };
        tally.complete(now.saturating_duration_since(from));
        let more = s.requests_per_conn.is_none_or(|n| self.next_seq < n);
        if !s.open_loop && tally.accepting_requests() && more {
            self.queue_request(now);
        }
        if !more && self.in_flight.len() == 0 {
            self.retire_ready = true;
        }
    }

    /// Open loop: when this connection's next request is meant to be sent. The thread's
    /// requests are spaced evenly and dealt to its connections in turn.
    pub fn next_intended(&self, s: &Settings, load_start: Instant) -> Instant {
        let k = self.open_loop_slot + self.scheduled * s.open_loop_stride;
        load_start + std::time::Duration::from_nanos((k as f64 * s.open_loop_interval_ns) as u64)
    }
}

/// Writes bytes `from..from + part.len()` of request `seq`'s plain frame (the 4-byte length,
/// then the payload) into `part`.
fn write_frame_part(part: &mut [u8], payload: usize, id: u32, seq: u64, from: usize) {
    let header = stcp_proto::frame::frame_header(payload);
    let in_header = FRAME_HEADER_LEN.saturating_sub(from).min(part.len());
    let (head, body) = part.split_at_mut(in_header);
    head.copy_from_slice(&header[from.min(FRAME_HEADER_LEN)..][..in_header]);
    payload::fill_at(
        body,
        id,
        seq,
        (from + in_header).saturating_sub(FRAME_HEADER_LEN),
    );
}

#[cfg(test)]
mod tests;
