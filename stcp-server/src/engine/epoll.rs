//! The epoll fallback: tokio with a current-thread runtime per worker thread, one task per
//! connection. Same protocol logic as the io_uring backend ([`crate::echo`], the same
//! [`stcp_proto::Decoder`] and [`stcp_proto::FrameStream`]), simpler IO: read, echo every whole
//! record in place (opened, then resealed) or, in TCP mode, every byte read, write it
//! all, read again, so a connection never has more than one read's worth of echoes buffered
//! (64 KiB), plus the one incomplete record the decoder holds. TLS connections run the same
//! rustls pump as io_uring's ([`crate::tls::pump`]), one read at a time.

use std::{
    cell::{Cell, RefCell},
    fmt, io,
    sync::{atomic::AtomicU64, Arc},
    task::Poll,
    time::{Duration, Instant},
};

use stcp_proto::{Codec, Decoder, Error, FrameStream, Framing, Mode, MAX_RECORD_LEN};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};

use super::{Ready, Shared, WorkerListeners, HANDSHAKES_PER_TURN};
use crate::{
    echo::{accept_handshake, check_hello, push_close_record, Crypto},
    errors::ErrorKind,
    handshake_limit::HandshakeLimiter,
    ratelog,
    stats::WorkerCounters,
    tls::{self, Stage, TlsError, RUSTLS_HELD, SCRATCH_LEN},
};

thread_local! {
    /// `--handshake-rate-per-ip`: the buckets of the worker running on this thread.
    static LIMITER: RefCell<Option<HandshakeLimiter>> = const { RefCell::new(None) };
    /// Server handshake halves this worker computed in its current turn ([`handshake_turn`]).
    static HANDSHAKES_THIS_TURN: Cell<usize> = const { Cell::new(0) };
}

/// The epoll worker's bounded handshake step (the io_uring worker's is `uring/hello.rs`): at most
/// [`HANDSHAKES_PER_TURN`] server handshake halves between two polls of the runtime's I/O
/// driver. The first handshake of a turn spawns a task that starts the next turn's count once
/// tokio has polled the driver (`yield_now` defers a task's wake until after that poll). A
/// connection whose handshake would go over the budget is counted once as deferred and yields
/// until a turn has room, so the established connections whose data arrived meanwhile are
/// served before it. Best effort: tokio promises that a yielded task runs again, not when.
async fn handshake_turn(counters: &WorkerCounters) {
    let mut deferred = false;
    while HANDSHAKES_THIS_TURN.get() >= HANDSHAKES_PER_TURN {
        if !deferred {
            WorkerCounters::add(&counters.handshakes_deferred, 1);
            deferred = true;
        }
        tokio::task::yield_now().await;
    }
    if HANDSHAKES_THIS_TURN.get() == 0 {
        tokio::spawn(async {
            tokio::task::yield_now().await;
            HANDSHAKES_THIS_TURN.set(0);
        });
    }
    HANDSHAKES_THIS_TURN.set(HANDSHAKES_THIS_TURN.get() + 1);
}

/// "No idle timeout" as a duration tokio accepts.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a connection ended badly.
enum ConnError {
    Proto(Error),
    Io(io::Error),
    Timeout(ErrorKind),
    Truncated,
    /// The hello's source address was over `--handshake-rate-per-ip`.
    RateLimited,
    /// The peer's address was gone before its handshake (it could not receive the reply).
    NoPeer,
    /// TLS mode: rustls refused the peer's bytes, or a frame inside broke the limits.
    Tls(TlsError),
}

impl ConnError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConnError::Proto(e) => ErrorKind::of(e),
            ConnError::Io(_) => ErrorKind::Io,
            ConnError::Timeout(k) => *k,
            ConnError::Truncated => ErrorKind::Truncated,
            ConnError::RateLimited => ErrorKind::HandshakeRateLimited,
            ConnError::NoPeer => ErrorKind::Io,
            ConnError::Tls(e) => e.kind(),
        }
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Proto(e) => write!(f, "{e}"),
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::Timeout(k) => f.write_str(k.label()),
            ConnError::Truncated => f.write_str("stream cut"),
            ConnError::RateLimited => f.write_str("source address over --handshake-rate-per-ip"),
            ConnError::NoPeer => f.write_str("peer address unavailable before the handshake"),
            ConnError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for ConnError {
    fn from(e: Error) -> Self {
        ConnError::Proto(e)
    }
}

/// Runs worker `index` on the calling thread until the server stops.
pub fn run_worker(
    index: usize,
    shared: Arc<Shared>,
    listeners: WorkerListeners,
    ready: Ready,
) -> io::Result<()> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    rt.block_on(async move {
        let mut ls = Vec::new();
        for (mode, l) in listeners.into_vec() {
            match TcpListener::from_std(l) {
                Ok(l) => ls.push((mode, l)),
                Err(e) => {
                    ready.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            }
        }
        ready.send(Ok(()));
        serve(index, shared, ls).await;
        Ok(())
    })
}

async fn accept_any(ls: &[(Mode, TcpListener)]) -> (Mode, io::Result<TcpStream>) {
    std::future::poll_fn(|cx| {
        for (mode, l) in ls {
            if let Poll::Ready(r) = l.poll_accept(cx) {
                return Poll::Ready((*mode, r.map(|(s, _)| s)));
            }
        }
        Poll::Pending
    })
    .await
}

async fn stop_requested(shared: &Shared) {
    while !shared.stopping() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve(index: usize, shared: Arc<Shared>, ls: Vec<(Mode, TcpListener)>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let counters = || shared.stats.worker(index);
    // `--handshake-rate-per-ip`: this worker's buckets, for its connections' tasks, which all
    // run on this thread (a current-thread runtime): no lock.
    LIMITER.with(|l| {
        *l.borrow_mut() = shared
            .config
            .handshake_rate_per_ip
            .map(|rate| HandshakeLimiter::new(rate, Instant::now()));
    });
    loop {
        tokio::select! {
            (mode, r) = accept_any(&ls), if !ls.is_empty() => match r {
                Ok(stream) => {
                    if !shared.admit() {
                        WorkerCounters::add(&counters().refused, 1);
                        drop(stream);
                        continue;
                    }
                    WorkerCounters::add(&counters().accepted, 1);
                    conns.spawn(connection(index, shared.clone(), stream, mode, stop_rx.clone()));
                }
                Err(e) => {
                    counters().error(ErrorKind::Accept);
                    ratelog::connection_failed(ErrorKind::Accept, &e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop_requested(&shared) => break,
        }
    }
    drop(ls);
    let _ = stop_tx.send(true);
    let grace = shared.config.close_grace + Duration::from_millis(300);
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// One connection's whole life, with its accounting.
async fn connection(
    index: usize,
    shared: Arc<Shared>,
    mut stream: TcpStream,
    mode: Mode,
    mut stop: watch::Receiver<bool>,
) {
    // Decrements the open count even when the task is aborted at shutdown.
    struct Release<'a>(&'a Shared, usize);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            WorkerCounters::add(&self.0.stats.worker(self.1).closed, 1);
            self.0.release();
        }
    }
    let _release = Release(&shared, index);
    let _ = stream.set_nodelay(true);
    let result = match mode {
        Mode::Tls => tls_loop(index, &shared, &mut stream, &mut stop).await,
        _ => echo_loop(index, &shared, &mut stream, mode, &mut stop).await,
    };
    if let Err(e) = result {
        shared.stats.worker(index).error(e.kind());
        ratelog::connection_failed(e.kind(), &e);
    }
}

async fn echo_loop(
    index: usize,
    shared: &Shared,
    stream: &mut TcpStream,
    mode: Mode,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let cfg = &shared.config;
    let counters = shared.stats.worker(index);
    let idle = cfg.idle_timeout.unwrap_or(FOREVER);
    let framing = match mode {
        Mode::Stcp => Framing::Handshake,
        Mode::Tcp | Mode::Tls => Framing::Frames,
    };
    let mut decoder = Decoder::new(Codec::new(framing, cfg.max_frame));
    // TCP mode: frame boundaries, tracked while every byte read is echoed at once.
    let mut frames = FrameStream::new(cfg.max_frame);
    let handshake_deadline = Instant::now() + cfg.handshake_timeout;
    let mut crypto: Option<Box<Crypto>> = None;
    // One read's buffer, sized so that it, the record being reassembled and the spare
    // reassembly buffer stay within the per-connection buffer limit.
    let reassembly = match mode {
        Mode::Stcp => 2 * MAX_RECORD_LEN,
        Mode::Tcp | Mode::Tls => 0,
    };
    let read_size = cfg.conn_buffer_limit.saturating_sub(reassembly).max(4096);
    let mut buf: Vec<u8> = Vec::with_capacity(read_size);
    // The decoder's previous reassembly buffer, swapped back in for the next one.
    let mut spare: Vec<u8> = Vec::new();
    let mut held = HeldBytes::new(&counters.conn_buffer_bytes);
    loop {
        held.track(buf.capacity() + decoder.capacity() + spare.capacity());
        let (limit, timeout_kind) = if decoder.codec().framing() == Framing::Handshake {
            (
                handshake_deadline.saturating_duration_since(Instant::now()),
                ErrorKind::HandshakeTimeout,
            )
        } else {
            (idle, ErrorKind::IdleTimeout)
        };
        let n = tokio::select! {
            r = tokio::time::timeout(limit, stream.read_buf(&mut buf)) => match r {
                Err(_) => {
                    if timeout_kind == ErrorKind::IdleTimeout {
                        // The server's own end: a Close record (STCP, between frames), FIN.
                        if let Some(k) = crypto.as_mut() {
                            let mut rec = Vec::new();
                            if push_close_record(&mut k.sealer, &mut rec).is_ok() {
                                write_with_timeout(stream, &rec, cfg.close_grace).await?;
                            }
                        }
                        finish(stream, cfg.close_grace).await;
                    }
                    return Err(ConnError::Timeout(timeout_kind));
                }
                Ok(Err(e)) => return Err(ConnError::Io(e)),
                Ok(Ok(n)) => n,
            },
            _ = stop.changed() => {
                if let Some(k) = crypto.as_mut() {
                    // No Close in the middle of a frame (the sealer refuses it): the stream is
                    // then cut, as the protocol says.
                    let mut rec = Vec::new();
                    if push_close_record(&mut k.sealer, &mut rec).is_ok() {
                        write_with_timeout(stream, &rec, cfg.close_grace).await?;
                    }
                } else if decoder.codec().framing() == Framing::Handshake {
                    return Ok(());
                }
                finish(stream, cfg.close_grace).await;
                return Ok(());
            }
        };
        if n == 0 {
            let clean = match decoder.codec().framing() {
                Framing::Frames => frames.at_boundary(),
                Framing::Records => {
                    decoder.buffered() == 0
                        && crypto.as_ref().is_some_and(|k| k.opener.peer_closed())
                }
                Framing::Handshake => false,
            };
            finish(stream, cfg.close_grace).await;
            return if clean {
                Ok(())
            } else {
                Err(ConnError::Truncated)
            };
        }
        WorkerCounters::add(&counters.bytes_in, n as u64);
        if mode == Mode::Tcp {
            let done = frames
                .advance(&buf)
                .map_err(|e| ConnError::Proto(e.error))?;
            write_with_timeout(stream, &buf, idle).await?;
            WorkerCounters::add(&counters.frames, done as u64);
            WorkerCounters::add(&counters.bytes_out, buf.len() as u64);
            buf.clear();
            continue;
        }

        let mut cx = EchoCtx {
            shared,
            index,
            stream: &mut *stream,
            idle,
            crypto: &mut crypto,
        };
        let mut pos = 0;
        while pos < buf.len() {
            let framing = decoder.codec().framing();
            let d = decoder.decode(&buf[pos..])?;
            if d.reassembled {
                let mut unit = decoder.take_reassembled(std::mem::take(&mut spare));
                let step = echo(&mut cx, &mut decoder, framing, &mut unit).await;
                spare = unit;
                if step? == Step::Finished {
                    return Ok(());
                }
            }
            if !d.run.is_empty() {
                let run = pos + d.run.start..pos + d.run.end;
                if echo(&mut cx, &mut decoder, framing, &mut buf[run]).await? == Step::Finished {
                    return Ok(());
                }
            }
            pos += d.consumed.max(1);
        }
        buf.clear();
    }
}

/// Whether the per-address handshake limit lets a handshake from `stream`'s peer go ahead (no
/// limit: yes).
fn handshake_allowed(stream: &TcpStream) -> Result<(), ConnError> {
    if LIMITER.with(|l| l.borrow().is_none()) {
        return Ok(());
    }
    let ip = stream.peer_addr().map_err(|_| ConnError::NoPeer)?.ip();
    let allowed = LIMITER.with(|l| {
        l.borrow_mut()
            .as_mut()
            .is_none_or(|l| l.allow(ip, Instant::now()))
    });
    if allowed {
        Ok(())
    } else {
        Err(ConnError::RateLimited)
    }
}

/// One read into `buf` (appended), bounded by `limit`; `Ok(None)` when the server stops.
async fn read_or_stop(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
    timeout_kind: ErrorKind,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<usize>, ConnError> {
    tokio::select! {
        r = tokio::time::timeout(limit, stream.read_buf(buf)) => match r {
            Err(_) => Err(ConnError::Timeout(timeout_kind)),
            Ok(Err(e)) => Err(ConnError::Io(e)),
            Ok(Ok(n)) => Ok(Some(n)),
        },
        _ = stop.changed() => Ok(None),
    }
}

/// A TLS connection: rustls's `Acceptor` reads the ClientHello (parsing only), the limiter is
/// asked, the server's half of the handshake runs, then every read goes through
/// [`tls::pump`] (plaintext frames echoed back through rustls as they come out) and what rustls
/// has to send is written before the next read. Failures send rustls's alert, then FIN.
async fn tls_loop(
    index: usize,
    shared: &Shared,
    stream: &mut TcpStream,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let cfg = &shared.config;
    let counters = shared.stats.worker(index);
    let idle = cfg.idle_timeout.unwrap_or(FOREVER);
    let Some(config) = shared.tls.clone() else {
        return Err(ConnError::Proto(Error::NotEstablished));
    };
    let handshake_deadline = Instant::now() + cfg.handshake_timeout;
    // The read buffer and the TLS bytes written back (about as many) share what the limit
    // leaves after rustls's own buffer and the plaintext scratch.
    let read_size = (cfg
        .conn_buffer_limit
        .saturating_sub(RUSTLS_HELD + SCRATCH_LEN)
        / 2)
    .max(4096);
    let mut buf: Vec<u8> = Vec::with_capacity(read_size);
    let mut out: Vec<u8> = Vec::new();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    let mut frames = FrameStream::new(cfg.max_frame);
    let mut held = HeldBytes::new(&counters.conn_buffer_bytes);
    held.track(buf.capacity() + scratch.len() + RUSTLS_HELD);

    // The ClientHello.
    let mut acceptor = rustls::server::Acceptor::default();
    let (accepted, rest) = loop {
        let limit = handshake_deadline.saturating_duration_since(Instant::now());
        let Some(n) =
            read_or_stop(stream, &mut buf, limit, ErrorKind::HandshakeTimeout, stop).await?
        else {
            return Ok(());
        };
        if n == 0 {
            finish(stream, cfg.close_grace).await;
            return Err(ConnError::Truncated);
        }
        WorkerCounters::add(&counters.bytes_in, n as u64);
        let mut rd = &buf[..];
        let mut found = None;
        while !rd.is_empty() {
            if let Err(e) = acceptor.read_tls(&mut rd) {
                return Err(ConnError::Tls(TlsError::Buffer(e, Stage::ClientHello)));
            }
            match acceptor.accept() {
                Ok(None) => {}
                Ok(Some(accepted)) => {
                    found = Some((accepted, rd.to_vec()));
                    break;
                }
                Err((e, mut alert)) => {
                    let _ = alert.write_all(&mut out);
                    let _ = write_with_timeout(stream, &out, cfg.close_grace).await;
                    finish(stream, cfg.close_grace).await;
                    return Err(ConnError::Tls(TlsError::Tls(e, Stage::ClientHello)));
                }
            }
        }
        buf.clear();
        if let Some(found) = found {
            break found;
        }
    };
    // Malformed hellos failed above, before the limit was asked (and cost it nothing).
    handshake_allowed(stream)?;
    handshake_turn(counters).await;
    let mut session = match accepted.into_connection(config) {
        Ok(s) => s,
        Err((e, mut alert)) => {
            let _ = alert.write_all(&mut out);
            let _ = write_with_timeout(stream, &out, cfg.close_grace).await;
            finish(stream, cfg.close_grace).await;
            return Err(ConnError::Tls(TlsError::Tls(e, Stage::Handshake)));
        }
    };
    tls::limit_buffers(&mut session, cfg.conn_buffer_limit);
    tls::flush(&mut session, &mut out);
    let mut pending = Some(rest);
    loop {
        let step = match pending.take() {
            Some(bytes) => tls::pump(&mut session, &bytes, &mut frames, &mut scratch, &mut out),
            None => tls::pump(&mut session, &buf, &mut frames, &mut scratch, &mut out),
        };
        buf.clear();
        held.track(buf.capacity() + out.capacity() + scratch.len() + RUSTLS_HELD);
        match step {
            Ok(p) => {
                if p.handshake_done {
                    WorkerCounters::add(&counters.tls_handshakes, 1);
                }
                if !out.is_empty() {
                    write_with_timeout(stream, &out, idle).await?;
                    WorkerCounters::add(&counters.bytes_out, out.len() as u64);
                    out.clear();
                }
                WorkerCounters::add(&counters.frames, p.frames);
                if p.peer_closed {
                    tls::close(&mut session, &mut out);
                    write_with_timeout(stream, &out, cfg.close_grace).await?;
                    finish(stream, cfg.close_grace).await;
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = write_with_timeout(stream, &out, cfg.close_grace).await;
                finish(stream, cfg.close_grace).await;
                return Err(ConnError::Tls(e));
            }
        }
        let (limit, timeout_kind) = if session.is_handshaking() {
            (
                handshake_deadline.saturating_duration_since(Instant::now()),
                ErrorKind::HandshakeTimeout,
            )
        } else {
            (idle, ErrorKind::IdleTimeout)
        };
        let read = read_or_stop(stream, &mut buf, limit, timeout_kind, stop).await;
        let established = !session.is_handshaking();
        match read {
            Ok(Some(0)) => {
                // A FIN without close_notify: a cut stream.
                finish(stream, cfg.close_grace).await;
                return Err(ConnError::Truncated);
            }
            Ok(Some(n)) => WorkerCounters::add(&counters.bytes_in, n as u64),
            // Stop, or idle: the server's own end, close_notify then FIN (a connection still in
            // its handshake is just closed).
            Ok(None) | Err(ConnError::Timeout(ErrorKind::IdleTimeout)) => {
                if established {
                    tls::close(&mut session, &mut out);
                    write_with_timeout(stream, &out, cfg.close_grace).await?;
                    finish(stream, cfg.close_grace).await;
                }
                return match read {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// What the echo loop does after a run of units.
#[derive(PartialEq, Eq)]
enum Step {
    Continue,
    /// The client's close record was echoed (resealed) as ours: the session is over.
    Finished,
}

/// What [`echo`] works on.
struct EchoCtx<'a> {
    shared: &'a Shared,
    index: usize,
    stream: &'a mut TcpStream,
    idle: Duration,
    crypto: &'a mut Option<Box<Crypto>>,
}

/// Answers a handshake frame, or echoes a run of whole records in place with one write
/// (opened, then resealed, in place).
async fn echo(
    cx: &mut EchoCtx<'_>,
    decoder: &mut Decoder,
    framing: Framing,
    run: &mut [u8],
) -> Result<Step, ConnError> {
    let counters = cx.shared.stats.worker(cx.index);
    if framing == Framing::Handshake {
        // Malformed hellos fail before the limit is asked (and cost it nothing).
        check_hello(&cx.shared.proto, run)?;
        handshake_allowed(cx.stream)?;
        handshake_turn(counters).await;
        let mut reply = Vec::new();
        *cx.crypto = Some(accept_handshake(&cx.shared.proto, run, &mut reply)?);
        decoder.set_framing(Framing::Records);
        WorkerCounters::add(&counters.handshakes, 1);
        write_with_timeout(cx.stream, &reply, cx.idle).await?;
        return Ok(Step::Continue);
    }
    let Some(k) = cx.crypto.as_mut() else {
        return Err(ConnError::Proto(Error::NotEstablished));
    };
    let frames_before = k.opener.frames();
    k.opener.open_all(run)?;
    k.sealer.seal_all(run)?;
    let peer_closed = k.opener.peer_closed();
    let frames = k.opener.frames() - frames_before;
    write_with_timeout(cx.stream, run, cx.idle).await?;
    WorkerCounters::add(&counters.frames, frames);
    WorkerCounters::add(&counters.bytes_out, run.len() as u64);
    if peer_closed {
        finish(cx.stream, cx.shared.config.close_grace).await;
        return Ok(Step::Finished);
    }
    Ok(Step::Continue)
}

/// A connection's share of the worker's `conn_buffer_bytes` gauge: follows its read buffer's
/// capacity, and gives it back when the connection ends (even when its task is aborted).
struct HeldBytes<'a> {
    gauge: &'a AtomicU64,
    held: u64,
}

impl<'a> HeldBytes<'a> {
    fn new(gauge: &'a AtomicU64) -> HeldBytes<'a> {
        HeldBytes { gauge, held: 0 }
    }

    /// The buffer now has `capacity` bytes.
    fn track(&mut self, capacity: usize) {
        let now = capacity as u64;
        if now > self.held {
            WorkerCounters::add(self.gauge, now - self.held);
        } else if now < self.held {
            WorkerCounters::sub(self.gauge, self.held - now);
        }
        self.held = now;
    }
}

impl Drop for HeldBytes<'_> {
    fn drop(&mut self) {
        WorkerCounters::sub(self.gauge, self.held);
    }
}

async fn write_with_timeout(
    stream: &mut TcpStream,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), ConnError> {
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Err(_) => Err(ConnError::Timeout(ErrorKind::IdleTimeout)),
        Ok(Err(e)) => Err(ConnError::Io(e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// Sends FIN, then reads (and discards) until the client's FIN or `grace` elapses, so the last
/// echoes are not lost to a reset.
async fn finish(stream: &mut TcpStream, grace: Duration) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(grace, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    /// Ten handshakes at once on one worker: four a turn, the rest deferred (each counted once)
    /// and computed in the next turns, none lost.
    #[test]
    fn handshakes_go_four_a_turn_and_the_rest_wait_for_the_next_turns() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let counters = Arc::new(WorkerCounters::default());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        rt.block_on(async {
            let mut tasks = JoinSet::new();
            for _ in 0..10 {
                let (counters, seen) = (counters.clone(), seen.clone());
                tasks.spawn(async move {
                    handshake_turn(&counters).await;
                    // The count of this turn, right after this handshake took its place in it.
                    seen.lock().unwrap().push(HANDSHAKES_THIS_TURN.get());
                });
            }
            while tasks.join_next().await.is_some() {}
        });
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]);
        assert_eq!(counters.handshakes_deferred.load(Relaxed), 6);
    }
}
