//! One persistent client connection: its state, its buffers (allocated once, never grown), the
//! requests it has in flight, and the byte-level work of writing requests and checking echoes.
//! No I/O happens here; the client thread's event loop moves the bytes.

use std::os::fd::OwnedFd;
use std::time::Instant;

use stcp_proto::{
    ClientHandshake, Codec, Framing, RecordHeader, RecordOpener, RecordSealer, RecordType,
    FRAME_HEADER_LEN, RECORD_HEADER_LEN, TAG_LEN,
};

mod in_flight;

pub(in crate::engine) use in_flight::{InFlight, InFlightQueue};

use super::settings::Settings;
use super::tally::Tally;
use crate::errors::ErrorKind;
use crate::payload;
use stcp_proto::Mode;

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
}

impl OutBuf {
    fn new(capacity: usize) -> OutBuf {
        OutBuf {
            buf: vec![0; capacity].into_boxed_slice(),
            len: 0,
            sealed: 0,
            sent: 0,
        }
    }
    fn clear(&mut self) {
        self.len = 0;
        self.sealed = 0;
        self.sent = 0;
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
    /// Received bytes not yet consumed (STCP records, handshake reply).
    pub inbuf: Box<[u8]>,
    pub in_len: usize,
    /// Bytes at the front of `inbuf` forming whole records, ready to open.
    pub in_complete: usize,
    frame: FrameProgress,
    pub in_flight: InFlightQueue,
    next_seq: u64,
    /// Requests queued this turn, to be stamped with the submit time.
    pub unstamped: usize,
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
}

impl Connection {
    pub fn new(id: u32, open_loop_slot: u64, s: &Settings, now: Instant) -> Connection {
        let depth = s.depth as usize;
        let out_capacity =
            (depth * s.record_len).max(stcp_proto::HANDSHAKE_MAX_LEN + FRAME_HEADER_LEN);
        // TCP echoes are checked as they stream in; only STCP records (and the handshake reply)
        // are assembled: at most `depth` of them, and the server's Close record after them.
        let in_capacity = match s.mode {
            Mode::Stcp => (depth * s.record_len + RECORD_HEADER_LEN + TAG_LEN)
                .max(stcp_proto::HANDSHAKE_MAX_LEN + FRAME_HEADER_LEN),
            Mode::Tcp => 0,
        };
        Connection {
            id,
            gen: 0,
            fd: None,
            state: State::NotStarted,
            started: now,
            setup_deadline: now,
            sealer: None,
            opener: None,
            out: [OutBuf::new(out_capacity), OutBuf::new(out_capacity)],
            fill: 0,
            sending: None,
            inbuf: vec![0; in_capacity].into_boxed_slice(),
            in_len: 0,
            in_complete: 0,
            frame: FrameProgress::default(),
            in_flight: InFlightQueue::new(depth, now),
            next_seq: 0,
            unstamped: 0,
            open_loop_slot,
            scheduled: 0,
            wants_open: false,
            wants_send: false,
            recv_armed: false,
            server_closed: false,
            close_received: false,
            peer_eof: false,
        }
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
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

    /// Writes the next request (header, payload, room for the tag) and puts it in flight.
    pub fn queue_request(&mut self, s: &Settings, intended: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = self.id;
        let out = self.filling();
        let record = &mut out.buf[out.len..out.len + s.record_len];
        match s.mode {
            Mode::Stcp => {
                stcp_proto::write_record_header(record, RecordType::Data, s.payload);
                payload::fill(
                    &mut record[RECORD_HEADER_LEN..RECORD_HEADER_LEN + s.payload],
                    id,
                    seq,
                );
            }
            Mode::Tcp => {
                record[..FRAME_HEADER_LEN].copy_from_slice(&(s.payload as u32).to_be_bytes());
                payload::fill(&mut record[FRAME_HEADER_LEN..], id, seq);
            }
        }
        out.len += s.record_len;
        if s.mode == Mode::Tcp {
            out.sealed = out.len;
        }
        self.in_flight.push(InFlight {
            seq,
            intended,
            sent: intended,
        });
        self.unstamped += 1;
        self.wants_send = true;
    }

    /// Queues an authenticated Close record (STCP) so the server sees an orderly end.
    pub fn queue_close(&mut self) {
        if self.sealer.is_none() {
            return;
        }
        let out = self.filling();
        let Some(record) = out
            .buf
            .get_mut(out.len..out.len + RECORD_HEADER_LEN + TAG_LEN)
        else {
            return;
        };
        stcp_proto::write_record_header(record, RecordType::Close, 0);
        out.len += RECORD_HEADER_LEN + TAG_LEN;
        self.wants_send = true;
    }

    /// The unsealed records of the filling buffer, for `seal_batch`.
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

    /// Stamps this turn's requests with the time they are handed to the kernel.
    pub fn stamp(&mut self, now: Instant) {
        self.in_flight.stamp_newest(self.unstamped, now);
        self.unstamped = 0;
    }

    /// If nothing is being sent and the filling buffer holds only sealed bytes, hands it to the
    /// kernel (returns the range to send) and fills the other one from now on.
    pub fn start_send(&mut self) -> Option<(*const u8, u32)> {
        let out = &self.out[self.fill];
        if self.sending.is_some() || out.len == 0 || out.sealed < out.len {
            return None;
        }
        let range = (out.buf.as_ptr(), out.len as u32);
        self.sending = Some(self.fill);
        self.fill = 1 - self.fill;
        Some(range)
    }

    /// A send completed with `n` bytes taken: returns the remainder still to send (a short send),
    /// or, once the buffer is through, starts sending the other one if it is ready.
    pub fn sent(&mut self, n: usize) -> Option<(*const u8, u32)> {
        let i = self.sending?;
        let out = &mut self.out[i];
        out.sent += n;
        if out.sent < out.len {
            let rest = &out.buf[out.sent..out.len];
            return Some((rest.as_ptr(), rest.len() as u32));
        }
        out.clear();
        self.sending = None;
        self.start_send()
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

    /// Received bytes of STCP records: buffers them and finds the whole records at the front.
    /// Bytes beyond the records this connection has in flight (and the server's Close record)
    /// are refused: an echo server never sends more than it was sent, and the buffer never
    /// grows. A Close record is assembled and opened like the others, so only an authentic one
    /// ends the connection cleanly; nothing may follow it.
    pub fn absorb_records(&mut self, data: &[u8], s: &Settings) -> Result<(), ErrorKind> {
        let end = self.in_len + data.len();
        self.inbuf
            .get_mut(self.in_len..end)
            .ok_or(ErrorKind::Verify)?
            .copy_from_slice(data);
        self.in_len = end;
        if self.opener.is_none() {
            return Err(ErrorKind::Io);
        }
        // Records of at most one request's payload: a longer one is refused from its header.
        let codec = Codec::new(Framing::Records, s.payload);
        let start = self.in_complete;
        let mut complete = start;
        for unit in codec.units(&self.inbuf[start..self.in_len]) {
            let unit = unit.map_err(|_| ErrorKind::Verify)?;
            let kind = echo_record_kind(&self.inbuf[start + unit.start..], s)?;
            complete = start + unit.end;
            if kind == RecordType::Close {
                self.close_received = true;
                break;
            }
        }
        self.in_complete = complete;
        if !self.close_received && self.in_len - complete >= RECORD_HEADER_LEN {
            // The next record's header is here: it must announce an echo or a Close.
            echo_record_kind(&self.inbuf[complete..], s)?;
        }
        if self.close_received && self.in_len > self.in_complete {
            // Bytes after the server's Close record: nothing may follow it.
            return Err(ErrorKind::Verify);
        }
        if self.in_complete > 0 {
            self.wants_open = true;
        }
        Ok(())
    }

    /// The whole records at the front of `inbuf`, for `open_batch`.
    pub fn open_job(&mut self) -> Option<(&mut RecordOpener, &mut [u8])> {
        let opener = self.opener.as_mut()?;
        (self.in_complete > 0).then(|| (opener, &mut self.inbuf[..self.in_complete]))
    }

    /// After the records at the front were opened in place: checks every echo against its
    /// request, completes the requests, and moves any partial record to the front.
    pub fn consume_opened(
        &mut self,
        now: Instant,
        s: &Settings,
        tally: &mut Tally,
    ) -> Result<(), ErrorKind> {
        let mut at = 0;
        while at < self.in_complete {
            if self.close_received && at + RECORD_HEADER_LEN + TAG_LEN == self.in_complete {
                // The server's Close record, opened (authenticated) with the records before it.
                self.server_closed = true;
                break;
            }
            let front = self.in_flight.front().copied().ok_or(ErrorKind::Verify)?;
            let payload = &self.inbuf[at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + s.payload];
            payload::verify(payload, self.id, front.seq).map_err(|_| ErrorKind::Verify)?;
            at += s.record_len;
            self.complete_front(now, s, tally);
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
                    && Codec::new(Framing::Frames, s.payload).unit_len(f.header) != Ok(s.record_len)
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
        if !s.open_loop && tally.accepting_requests() {
            self.queue_request(s, now);
        }
    }

    /// Open loop: when this connection's next request is meant to be sent. The thread's
    /// requests are spaced evenly and dealt to its connections in turn.
    pub fn next_intended(&self, s: &Settings, load_start: Instant) -> Instant {
        let k = self.open_loop_slot + self.scheduled * s.open_loop_stride;
        load_start + std::time::Duration::from_nanos((k as f64 * s.open_loop_interval_ns) as u64)
    }
}

#[cfg(test)]
mod tests;

/// The type of the echo record starting at `record[0]`, whose header the codec read: a Data
/// record must carry exactly one request's payload and a Close record none. Anything else is an
/// echo that differs from the request.
fn echo_record_kind(record: &[u8], s: &Settings) -> Result<RecordType, ErrorKind> {
    let header = record.first_chunk().ok_or(ErrorKind::Verify)?;
    let header = RecordHeader::parse(*header, s.payload).map_err(|_| ErrorKind::Verify)?;
    let expected = match header.kind {
        RecordType::Close => 0,
        RecordType::Data => s.payload,
    };
    if header.payload_len == expected {
        Ok(header.kind)
    } else {
        Err(ErrorKind::Verify)
    }
}
