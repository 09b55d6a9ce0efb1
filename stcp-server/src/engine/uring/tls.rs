//! TLS connections on the io_uring worker. Received bytes go to the connection's rustls state
//! straight from the ring buffer (which goes back to the kernel at once), and what rustls has to
//! send is queued as one heap chunk per receive, sent like any echo:
//!
//! - **Accepting**: rustls's `Acceptor` gathers and parses the ClientHello (no cryptography, so a
//!   non-TLS peer or a garbage hello fails here and costs the handshake budget nothing).
//! - **Hello**: a whole ClientHello waits on the worker's `hellos` list for the bounded handshake
//!   step (`hello.rs`), which asks the per-address limiter and then runs the server's expensive
//!   half (`Accepted::into_connection`: X25519, the ECDSA signature, the server's flight).
//! - **Session**: [`crate::tls::pump`] feeds each receive to rustls, echoes the plaintext frames
//!   (headers checked by the connection's `FrameStream`, as in TCP mode) and takes the records to
//!   send. rustls holds no plaintext after a pump and at most one incomplete record.
//!
//! A rustls failure queues the alert rustls made, then drains (FIN after it), counted by kind.

use std::io;

use stcp_engine::{Driver, RingBuf};

use super::{
    conn::{Chunk, Conn, Life, TlsState},
    Worker,
};
use crate::{
    ratelog,
    stats::WorkerCounters,
    tls::{self, Pumped, Stage, TlsError, RUSTLS_HELD},
};

/// What one receive on a TLS connection produced.
#[derive(Debug, Default)]
struct TlsIngested {
    /// A whole ClientHello is held for the bounded handshake step.
    hello: bool,
    pumped: Pumped,
}

impl Worker {
    /// Bytes received on a TLS connection.
    pub(super) fn on_tls_data(&mut self, d: &mut Driver, slot: usize, buf: RingBuf) {
        let Worker {
            conns,
            pool,
            scratch,
            ..
        } = self;
        let c = &mut conns[slot];
        let mut out = pool.get();
        let result = tls_ingest(c, d.buffers().bytes(&buf), scratch, &mut out);
        d.give_back(buf);
        match result {
            Ok(r) => {
                if r.hello {
                    self.hellos
                        .push_back((slot as u32, self.conns[slot].gen, false));
                }
                self.after_pump(d, slot, r.pumped, out);
            }
            Err(e) => self.fail_tls(d, slot, out, &e),
        }
    }

    /// Queues what a pump produced and acts on what it saw (handshake done, close_notify).
    fn after_pump(&mut self, d: &mut Driver, slot: usize, p: Pumped, out: Vec<u8>) {
        let counters = self.shared.stats.worker(self.index);
        if p.frames > 0 {
            WorkerCounters::add(&counters.frames, p.frames);
        }
        if p.handshake_done {
            WorkerCounters::add(&counters.tls_handshakes, 1);
            self.conns[slot].deadline = None;
        }
        self.queue_out(slot, out);
        if p.peer_closed {
            // The client's close_notify: ours goes after the echoes, then FIN.
            let mut bye = self.pool.get();
            if let TlsState::Session(s) = &mut self.conns[slot].tls {
                tls::close(s, &mut bye);
            }
            self.queue_out(slot, bye);
            self.queued(d, slot);
            self.drain(d, slot);
        } else {
            self.queued(d, slot);
        }
    }

    /// Queues TLS bytes to send (or returns the empty buffer to the pool).
    fn queue_out(&mut self, slot: usize, out: Vec<u8>) {
        if out.is_empty() {
            self.pool.put(out);
            return;
        }
        let c = &mut self.conns[slot];
        let chunk = Chunk::Heap { buf: out, sent: 0 };
        c.held.add(&chunk);
        c.sendq.push_back(chunk);
    }

    /// A TLS failure: counted and logged by kind; the alert rustls made (in `out`) is sent,
    /// then FIN.
    fn fail_tls(&mut self, d: &mut Driver, slot: usize, out: Vec<u8>, e: &TlsError) {
        let kind = e.kind();
        self.counters().error(kind);
        ratelog::connection_failed(kind, e);
        self.conns[slot].tls = TlsState::None;
        self.queue_out(slot, out);
        self.queued(d, slot);
        self.drain(d, slot);
    }

    /// The server's half of a TLS handshake for a held ClientHello (the bounded step calls it).
    pub(super) fn answer_tls_hello(&mut self, d: &mut Driver, slot: usize) -> io::Result<()> {
        let Some(config) = self.shared.tls.clone() else {
            return Ok(());
        };
        let limit = self.shared.config.conn_buffer_limit;
        let Worker {
            conns,
            pool,
            scratch,
            ..
        } = self;
        let c = &mut conns[slot];
        let TlsState::Hello(accepted) = std::mem::replace(&mut c.tls, TlsState::None) else {
            return Ok(());
        };
        let mut out = pool.get();
        let result = match accepted.into_connection(config) {
            Ok(mut session) => {
                tls::limit_buffers(&mut session, limit);
                tls::flush(&mut session, &mut out);
                let pumped = match c.hello.take() {
                    Some(rest) => {
                        let r = tls::pump(&mut session, &rest, &mut c.stream, scratch, &mut out);
                        pool.put(rest);
                        r
                    }
                    None => Ok(Pumped::default()),
                };
                c.tls = TlsState::Session(Box::new(session));
                pumped
            }
            Err((e, mut alert)) => {
                let _ = alert.write_all(&mut out);
                Err(TlsError::Tls(e, Stage::Handshake))
            }
        };
        match result {
            Ok(p) => self.after_pump(d, slot, p, out),
            Err(e) => self.fail_tls(d, slot, out, &e),
        }
        Ok(())
    }

    /// Ends a TLS connection from the server's side (stop, idle timeout): close_notify after
    /// the queued echoes, then FIN; a connection still in its handshake is aborted.
    pub(super) fn close_tls(&mut self, d: &mut Driver, slot: usize) {
        if !self.conns[slot].tls_established() {
            self.abort(d, slot);
            return;
        }
        let mut bye = self.pool.get();
        if let TlsState::Session(s) = &mut self.conns[slot].tls {
            tls::close(s, &mut bye);
        }
        self.queue_out(slot, bye);
        self.queued(d, slot);
        self.drain(d, slot);
    }
}

/// A client that sent more than a record after its ClientHello, before the server's reply.
fn too_much_before_reply() -> TlsError {
    TlsError::Buffer(
        io::Error::other("more than a record sent before the server's reply"),
        Stage::Handshake,
    )
}

/// Feeds received bytes to the connection's rustls state (see the module text). Bytes that
/// arrive after a whole ClientHello, before the handshake step, wait in `c.hello` (at most
/// [`RUSTLS_HELD`]).
fn tls_ingest(
    c: &mut Conn,
    data: &[u8],
    scratch: &mut [u8],
    out: &mut Vec<u8>,
) -> Result<TlsIngested, TlsError> {
    let mut r = TlsIngested::default();
    if c.life != Life::Open {
        return Ok(r);
    }
    match &mut c.tls {
        TlsState::Accepting(acceptor) => {
            let mut rest = data;
            while !rest.is_empty() {
                acceptor
                    .read_tls(&mut rest)
                    .map_err(|e| TlsError::Buffer(e, Stage::ClientHello))?;
                match acceptor.accept() {
                    Ok(None) => {}
                    Ok(Some(accepted)) => {
                        if rest.len() > RUSTLS_HELD {
                            return Err(too_much_before_reply());
                        }
                        c.tls = TlsState::Hello(Box::new(accepted));
                        if !rest.is_empty() {
                            c.hello = Some(rest.to_vec());
                        }
                        r.hello = true;
                        return Ok(r);
                    }
                    Err((e, mut alert)) => {
                        let _ = alert.write_all(out);
                        return Err(TlsError::Tls(e, Stage::ClientHello));
                    }
                }
            }
            Ok(r)
        }
        TlsState::Hello(_) => {
            let held = c.hello.as_ref().map_or(0, Vec::len);
            if held + data.len() > RUSTLS_HELD {
                return Err(too_much_before_reply());
            }
            c.hello.get_or_insert_with(Vec::new).extend_from_slice(data);
            Ok(r)
        }
        TlsState::Session(session) => {
            r.pumped = tls::pump(session, data, &mut c.stream, scratch, out)?;
            Ok(r)
        }
        TlsState::None => Ok(r),
    }
}
