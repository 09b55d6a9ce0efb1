//! Receiving: connects completing, the handshake reply, echoes arriving (records assembled and
//! opened in one batch per turn, then checked record by record against their requests), and the
//! server's authenticated Close.

use super::*;

impl ClientThread {
    pub(super) fn on_connect(&mut self, d: &mut Driver, slot: usize, result: i32, now: Instant) {
        if !matches!(self.conns[slot].state, State::Connecting) {
            return;
        }
        if result < 0 {
            self.fail_connect(d, slot, -result);
            return;
        }
        let conn = &mut self.conns[slot];
        conn.connected = now;
        stats::record_ns(
            &mut self.connect,
            now.saturating_duration_since(conn.started).as_nanos() as u64,
        );
        self.arm_recv(d, slot);
        match self.settings.mode {
            // TLS runs are refused at start (`RunArgs::validate`) until the TLS client lands.
            Mode::Tcp | Mode::Tls => self.established(slot, now),
            Mode::Stcp => {
                let config = self
                    .client_config
                    .as_ref()
                    .expect("STCP runs have a client config");
                let started = ClientHandshake::start(config, crate::entropy::random_seed());
                let conn = &mut self.conns[slot];
                match started {
                    Ok((handshake, first_frame)) => {
                        if conn.queue_bytes(&first_frame).is_err() {
                            self.fail(
                                d,
                                slot,
                                ErrorKind::Handshake,
                                "first handshake frame does not fit",
                            );
                            return;
                        }
                        conn.state = State::Handshaking(Box::new(handshake));
                        conn.setup_deadline = now + self.settings.timeout;
                    }
                    Err(_) => self.fail(d, slot, ErrorKind::Handshake, "handshake could not start"),
                }
            }
        }
    }

    /// A connection is set up (TCP: connected; STCP: handshake finished). Its handshake latency
    /// counts from the connect's start; during the load it counts as a handshake of its second,
    /// and with churn its requests start at once.
    pub(super) fn established(&mut self, slot: usize, now: Instant) {
        let conn = &mut self.conns[slot];
        conn.state = State::Established;
        stats::record_ns(
            &mut self.handshake,
            now.saturating_duration_since(conn.started).as_nanos() as u64,
        );
        self.established += 1;
        let Some(t) = self.tally.as_mut() else { return };
        t.handshake();
        if self.settings.churn().is_some() && t.accepting_requests() && !self.closing {
            self.queue_first_requests(slot, now);
        }
    }

    pub(super) fn arm_recv(&mut self, d: &mut Driver, slot: usize) {
        let Some(fd) = self.conns[slot].fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        let token = self.token(Op::Recv, slot);
        self.conns[slot].recv_armed = true;
        let _ = d.arm_recv(fd, token);
    }

    pub(super) fn on_recv(&mut self, d: &mut Driver, slot: usize, c: Completion, now: Instant) {
        let (result, more, starved) = (c.result, c.more(), c.starved());
        if !more {
            self.conns[slot].recv_armed = false;
        }
        let outcome = if result > 0 {
            match c.buf {
                Some(buf) => {
                    let data = d.buffers().bytes(&buf);
                    let outcome = absorb(
                        &mut self.conns[slot],
                        data,
                        now,
                        &self.settings,
                        self.tally.as_mut(),
                    );
                    d.give_back(buf);
                    if outcome == Ok(Absorbed::HandshakeDone) {
                        self.established(slot, now);
                    }
                    outcome.map(|_| ())
                }
                None => Err((ErrorKind::Io, "receive completion without a buffer")),
            }
        } else if result == 0 {
            let conn = &mut self.conns[slot];
            let answered = self.settings.mode == Mode::Tcp || conn.server_closed;
            if conn.retiring && conn.is_established() && conn.in_complete == 0 && answered {
                // Churn: the server's FIN (STCP: after its Close record) answers our close.
                self.retired_eof(d, slot, now);
                return;
            }
            if conn.in_complete > 0 && conn.is_established() {
                // Records of this turn wait to be opened; if the server's Close is among them
                // this is a clean end. Judged in `open_records`; no re-arm.
                conn.peer_eof = true;
                return;
            }
            Err((ErrorKind::Io, "server closed the connection"))
        } else if result == -libc::ENOBUFS || result == -libc::ECANCELED {
            Ok(())
        } else {
            Err((ErrorKind::Io, errno_name(-result)))
        };
        if let Err((kind, why)) = outcome {
            // Whatever ends a connection during its handshake is a handshake failure (a server
            // that cannot authenticate us just closes).
            let (kind, why) = if matches!(self.conns[slot].state, State::Handshaking(_)) {
                let why = if result == 0 {
                    "the server closed the connection during the handshake: wrong --server-key, \
                     or the server requires a --psk (or another one)"
                } else {
                    why
                };
                (ErrorKind::Handshake, why)
            } else {
                (kind, why)
            };
            self.fail(d, slot, kind, why);
        } else if !more
            && !starved
            && result != -libc::ECANCELED
            && !self.closing
            && !self.conns[slot].has_ended()
        {
            // The multishot receive ended (the kernel stopped it): re-arm. One stopped by an
            // empty buffer ring is re-armed by the driver once buffers are back.
            self.arm_recv(d, slot);
        }
    }

    /// Opens, in one batch, every whole record this turn delivered, then checks the echoes.
    pub(super) fn open_records(&mut self, d: &mut Driver, now: Instant) {
        let slots = &mut self.batch_slots;
        let failures = &mut self.batch_failures;
        slots.clear();
        failures.clear();
        stcp_proto::open_batch(
            self.conns
                .iter_mut()
                .enumerate()
                .filter(|(_, c)| c.wants_open)
                .filter_map(|(slot, c)| {
                    c.wants_open = false;
                    let job = c.open_job()?;
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
                // A record that does not authenticate was altered on the way: the echo differs.
                self.fail(
                    d,
                    slot,
                    ErrorKind::Verify,
                    "echo record failed authentication",
                );
                continue;
            }
            let tally = self
                .tally
                .as_mut()
                .expect("records arrive only during the load");
            if let Err(kind) = self.conns[slot].consume_opened(now, &self.settings, tally) {
                self.fail(d, slot, kind, "echo differs from the request");
            } else if self.conns[slot].retiring && self.conns[slot].server_closed {
                // Churn: the server's Close answers ours; its FIN ends the connection.
                if self.conns[slot].peer_eof {
                    self.retired_eof(d, slot, now);
                }
            } else if self.conns[slot].server_closed {
                self.closed_by_server(d, slot);
            } else if self.conns[slot].peer_eof {
                self.fail(d, slot, ErrorKind::Io, "server closed the connection");
            }
        }
    }

    /// The server ended the connection with its authenticated Close record: a clean end, not an
    /// error (a stopping server closes this way). Requests still in flight will get no echo;
    /// they are counted as unanswered. During our own close this is just the server's reply.
    pub(super) fn closed_by_server(&mut self, d: &mut Driver, slot: usize) {
        let conn = &mut self.conns[slot];
        if conn.has_ended() {
            return;
        }
        conn.state = State::Closed;
        if !self.closing {
            self.closed_by_server += 1;
            self.unanswered += conn.in_flight.len() as u64;
            if self.closed_by_server == 1 {
                tracing::info!(
                    connection = conn.id,
                    "the server closed the connection (authenticated close): it is stopping"
                );
            }
        }
        self.cancel(d, slot);
    }
}

/// What received bytes did to a connection.
#[derive(Debug, PartialEq, Eq)]
enum Absorbed {
    /// Taken (part of the handshake reply, echoes, or bytes of an ended connection).
    Taken,
    /// They completed the handshake: the connection is established.
    HandshakeDone,
}

/// Feeds received bytes to a connection, whatever stage it is in.
fn absorb(
    conn: &mut Connection,
    data: &[u8],
    now: Instant,
    s: &Settings,
    tally: Option<&mut Tally>,
) -> Result<Absorbed, (ErrorKind, &'static str)> {
    match &conn.state {
        State::Handshaking(_) => {
            let Some(len) = conn
                .absorb_handshake(data)
                .map_err(|k| (k, "bad handshake reply"))?
            else {
                return Ok(Absorbed::Taken);
            };
            let State::Handshaking(hs) = std::mem::replace(&mut conn.state, State::Established)
            else {
                unreachable!("matched above")
            };
            let session = hs
                .finish(&conn.inbuf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len])
                .map_err(|_| {
                    (
                        ErrorKind::Handshake,
                        "server failed the handshake (wrong key or PSK?)",
                    )
                })?;
            conn.sealer = Some(session.sealer);
            conn.opener = Some(session.opener);
            conn.in_len = 0;
            Ok(Absorbed::HandshakeDone)
        }
        State::Established => {
            let Some(tally) = tally else {
                return Err((ErrorKind::Verify, "server sent data before any request"));
            };
            tally.bytes_received(data.len());
            match s.mode {
                Mode::Stcp => conn
                    .absorb_records(data, now, s, tally)
                    .map_err(|k| (k, "bad echo record")),
                Mode::Tcp | Mode::Tls => conn
                    .absorb_frames(data, now, s, tally)
                    .map_err(|k| (k, "echo differs from the request")),
            }
            .map(|()| Absorbed::Taken)
        }
        State::Failed | State::Closed => Ok(Absorbed::Taken),
        State::NotStarted | State::Connecting => {
            Err((ErrorKind::Io, "data before the connection was set up"))
        }
    }
}
