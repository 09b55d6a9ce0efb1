//! A connection's life from the client's side: connecting (ramped), deadlines, failures (counted
//! once and logged a few times per kind), and the orderly close of every connection at the end.

use super::*;

impl ClientThread {
    /// Issues the connects as the ramp allows and turns until every connection is set up or failed.
    pub(super) fn connect_all(&mut self, d: &mut Driver, plan: &ThreadPlan, start: &StartLine) {
        let mut next = 0;
        loop {
            let now = Instant::now();
            while next < self.conns.len() {
                let at = plan.connect_epoch + plan.connect_spacing * self.conns[next].id;
                if at > now {
                    break;
                }
                self.start_connect(d, next, now);
                next += 1;
            }
            let settled = self.conns[..next]
                .iter()
                .all(|c| c.is_established() || c.has_ended());
            if (settled && next == self.conns.len()) || self.stop_requested(start) {
                break;
            }
            if self.turn(d).is_err() {
                break;
            }
        }
        // Stopped early (Ctrl-C): connections not set up yet are abandoned, not counted as errors.
        for slot in 0..self.conns.len() {
            if !(self.conns[slot].is_established() || self.conns[slot].has_ended()) {
                self.abandon(d, slot);
            }
        }
    }

    pub(super) fn start_connect(&mut self, d: &mut Driver, slot: usize, now: Instant) {
        let family = if self.settings_target_is_v6() {
            libc::AF_INET6
        } else {
            libc::AF_INET
        };
        // SAFETY: plain socket(2); the returned descriptor is owned by the OwnedFd below.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            self.fail_connect(d, slot, errno);
            return;
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_nodelay(&fd);
        let raw = fd.as_raw_fd();
        let conn = &mut self.conns[slot];
        conn.fd = Some(fd);
        conn.state = State::Connecting;
        conn.started = now;
        conn.setup_deadline = now + self.settings.timeout;
        let (addr, len) = &*self.target;
        // SAFETY: `self.target` is boxed, never replaced while connects are in flight, and at the
        // end handed to `Driver::shutdown` with the connections, which frees it only when no
        // connect is left in the kernel; so the address outlives the connect SQE.
        let sqe = unsafe {
            ops::connect(
                raw,
                (addr as *const libc::sockaddr_storage).cast(),
                *len,
                self.token(Op::Connect, slot),
            )
        };
        push(d, &sqe);
    }

    pub(super) fn settings_target_is_v6(&self) -> bool {
        i32::from(self.target.0.ss_family) == libc::AF_INET6
    }

    /// Cancels everything of a connection that has ended; later completions of its operations
    /// carry the old generation and are ignored.
    pub(super) fn cancel(&mut self, d: &mut Driver, slot: usize) {
        let conn = &mut self.conns[slot];
        if let Some(fd) = conn.fd.as_ref().map(|f| f.as_raw_fd()) {
            push(
                d,
                &ops::cancel_fd(fd, Token::new(Op::Cancel, slot as u32, conn.gen)),
            );
        }
        conn.gen = stcp_engine::next_gen(conn.gen);
    }

    pub(super) fn check_timeouts(&mut self, d: &mut Driver, now: Instant) {
        let timeout = self.settings.timeout;
        for slot in 0..self.conns.len() {
            let conn = &self.conns[slot];
            let failure = match &conn.state {
                State::Connecting if now > conn.setup_deadline => Some((
                    ErrorKind::Connect,
                    Some(libc::ETIMEDOUT),
                    "connect timed out",
                )),
                State::Handshaking(_) | State::TlsHandshaking if now > conn.setup_deadline => {
                    Some((
                        ErrorKind::Handshake,
                        Some(libc::ETIMEDOUT),
                        "handshake timed out",
                    ))
                }
                State::Established if conn.retiring && now > conn.setup_deadline => Some((
                    ErrorKind::Io,
                    Some(libc::ETIMEDOUT),
                    "the server did not close after our close",
                )),
                State::Established => conn
                    .in_flight
                    .front()
                    .filter(|f| now.saturating_duration_since(f.sent) > timeout)
                    .map(|_| (ErrorKind::Timeout, None, "echo did not come back in time")),
                _ => None,
            };
            if let Some((kind, errno, why)) = failure {
                self.fail_setup(d, slot, kind, errno, why);
            }
        }
    }

    /// Ends a connection without counting an error (the run was stopped before it was set up).
    pub(super) fn abandon(&mut self, d: &mut Driver, slot: usize) {
        let conn = &mut self.conns[slot];
        conn.state = State::Failed;
        self.cancel(d, slot);
    }

    /// A connect that failed with `errno` (or a socket that could not be created).
    pub(super) fn fail_connect(&mut self, d: &mut Driver, slot: usize, errno: i32) {
        self.fail_setup(d, slot, ErrorKind::Connect, Some(errno), errno_name(errno));
    }

    /// Counts a connection's failure once, logs the first few of each kind, and cancels its
    /// operations; the connection takes no further part in the run.
    pub(super) fn fail(&mut self, d: &mut Driver, slot: usize, kind: ErrorKind, why: &str) {
        self.fail_setup(d, slot, kind, None, why);
    }

    /// [`Self::fail`] with the OS error when there is one. A connect or handshake failure is
    /// counted by cause and not logged here: the run prints each cause once, with its count.
    pub(super) fn fail_setup(
        &mut self,
        d: &mut Driver,
        slot: usize,
        kind: ErrorKind,
        errno: Option<i32>,
        why: &str,
    ) {
        let conn = &mut self.conns[slot];
        if conn.has_ended() {
            return;
        }
        if self.closing {
            // Errors while closing (the server closing first, a cancelled send) are not failures.
            conn.state = State::Failed;
            return;
        }
        if conn.is_established() {
            self.lost += 1;
        }
        conn.state = State::Failed;
        self.errors.count(kind);
        if let Some(t) = self.tally.as_mut() {
            t.error();
        }
        let count = match kind {
            ErrorKind::Connect => self.errors.connect,
            ErrorKind::Handshake => self.errors.handshake,
            ErrorKind::Io => self.errors.io,
            ErrorKind::Timeout => self.errors.timeout,
            ErrorKind::Verify => self.errors.verify,
        };
        if matches!(kind, ErrorKind::Connect | ErrorKind::Handshake) {
            self.setup_failures.record(kind, errno, why);
            tracing::debug!(connection = conn.id, kind = kind.name(), "{why}");
        } else if count <= LOGGED_FAILURES_PER_KIND {
            tracing::warn!(connection = conn.id, kind = kind.name(), "{why}");
            if count == LOGGED_FAILURES_PER_KIND {
                tracing::warn!(
                    kind = kind.name(),
                    "further {} errors on this thread are counted, not logged",
                    kind.name()
                );
            }
        }
        self.cancel(d, slot);
    }

    /// Sends an authenticated close on every live STCP connection and waits for the server's
    /// close (so neither side resets a connection with unread bytes), cancels everything, and
    /// reaps until the kernel holds nothing of ours; bounded by [`CLOSE_GRACE`] twice.
    pub(super) fn close_all(&mut self, d: &mut Driver) {
        for conn in self.conns.iter_mut().filter(|c| c.is_established()) {
            conn.queue_close();
        }
        self.seal_and_send(d);
        // From here on a peer close or a failed operation just ends the connection (see `fail`).
        self.closing = true;
        let until = Instant::now() + CLOSE_GRACE;
        while self.settings.mode != Mode::Tcp
            && self.conns.iter().any(|c| c.is_established())
            && Instant::now() < until
        {
            if self.turn(d).is_err() {
                break;
            }
        }
        for slot in 0..self.conns.len() {
            if let Some(fd) = self.conns[slot].fd.as_ref().map(|f| f.as_raw_fd()) {
                push(d, &ops::cancel_fd(fd, self.token(Op::Cancel, slot)));
            }
        }
        while d.in_flight() > 0 && Instant::now() < until + CLOSE_GRACE {
            if self.turn(d).is_err() {
                break;
            }
        }
    }
}
