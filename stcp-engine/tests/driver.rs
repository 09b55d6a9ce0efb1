//! The driver against real loopback sockets: multishot receive into the provided buffers and a
//! send, both through a handler; buffer-ring exhaustion (ENOBUFS) and the resume rule; shutdown
//! with operations still in flight; tokens with generations; the probe; busy poll (a completion
//! that arrives while spinning, and a spin that sees none and still ends with its timeout).

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::fd::{AsRawFd, RawFd},
    time::{Duration, Instant},
};

use stcp_engine::{
    io_uring_or_skip, ops, probe, Completion, Drained, Driver, DriverOptions, Handler, Op, Receive,
    Token, WaitCounts,
};

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

fn small_driver(buffers: u16, buffer_size: u32) -> Driver {
    Driver::new(&DriverOptions {
        buffers,
        buffer_size,
        ..DriverOptions::default()
    })
    .expect("driver")
}

/// A handler that records what it saw; receives are kept (not given back) when `hold` is set.
#[derive(Default)]
struct Recorder {
    received: Vec<u8>,
    held: Vec<stcp_engine::RingBuf>,
    hold: bool,
    sends: Vec<i32>,
    starved: usize,
    ended_receives: usize,
    resumed: Vec<Token>,
    fd: RawFd,
    other: Vec<(Token, i32)>,
}

impl Handler for Recorder {
    fn on_completion(&mut self, d: &mut Driver, c: Completion) -> std::io::Result<()> {
        match c.token.op {
            Op::Recv => {
                let (starved, more) = (c.starved(), c.more());
                if let Some(buf) = c.buf {
                    self.received.extend_from_slice(d.buffers().bytes(&buf));
                    if self.hold {
                        self.held.push(buf);
                    } else {
                        d.give_back(buf);
                    }
                }
                if starved {
                    self.starved += 1;
                }
                if !more {
                    self.ended_receives += 1;
                }
            }
            Op::Send => self.sends.push(c.result),
            _ => self.other.push((c.token, c.result)),
        }
        Ok(())
    }

    fn resume_receive(&mut self, token: Token) -> Option<(RawFd, Receive)> {
        self.resumed.push(token);
        Some((self.fd, Receive::Multishot))
    }
}

fn turn_until(d: &mut Driver, h: &mut Recorder, mut done: impl FnMut(&Recorder) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(h) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for completions"
        );
        d.turn(h, Duration::from_millis(50)).unwrap();
        d.end_turn(h).unwrap();
    }
}

#[test]
fn probe_names_a_cause_or_supports_the_engine() {
    match probe() {
        Ok(s) => assert!(s.buf_ring),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn receive_and_send_through_a_handler() {
    if !io_uring_or_skip("driver::receive_and_send_through_a_handler") {
        return;
    }
    let mut d = small_driver(4, 1024);
    assert!(
        d.flags().single_issuer,
        "kernel >= 6.0 (checked by the probe)"
    );
    let (mut peer, ours) = pair();
    let mut h = Recorder {
        fd: ours.as_raw_fd(),
        ..Recorder::default()
    };
    let recv = Token::new(Op::Recv, 5, 9);
    d.arm_recv(ours.as_raw_fd(), recv).unwrap();
    assert_eq!(d.in_flight(), 1);
    // Peer -> us: 3000 bytes, more than one 1024-byte buffer; the multishot receive stays armed.
    let sent: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    peer.write_all(&sent).unwrap();
    turn_until(&mut d, &mut h, |h| h.received.len() >= sent.len());
    assert_eq!(h.received, sent);
    assert_eq!(d.in_flight(), 1, "the multishot receive is still armed");
    // Us -> peer: a copying send from memory that lives until its completion.
    let msg = b"sent through the driver".to_vec();
    // SAFETY: `msg` outlives the turns below, which reap the send's completion.
    let sqe = unsafe {
        ops::send(
            ours.as_raw_fd(),
            msg.as_ptr(),
            msg.len() as u32,
            Token::new(Op::Send, 5, 9),
        )
    };
    d.push(&sqe).unwrap();
    turn_until(&mut d, &mut h, |h| !h.sends.is_empty());
    assert_eq!(h.sends, vec![msg.len() as i32]);
    let mut back = vec![0u8; msg.len()];
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    peer.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    // A cancel ends the receive; both completions reach the handler with their tokens.
    d.push(&ops::cancel(recv, Token::new(Op::Cancel, 5, 9)))
        .unwrap();
    turn_until(&mut d, &mut h, |h| {
        h.ended_receives == 1 && !h.other.is_empty()
    });
    assert_eq!(h.other[0].0, Token::new(Op::Cancel, 5, 9));
    assert_eq!(d.in_flight(), 0);
    assert_eq!(d.shutdown((), Duration::from_secs(1)), Drained::Complete);
}

#[test]
fn a_single_receive_takes_at_most_one_buffer() {
    if !io_uring_or_skip("driver::a_single_receive_takes_at_most_one_buffer") {
        return;
    }
    let mut d = small_driver(8, 1024);
    let (mut peer, ours) = pair();
    let mut h = Recorder {
        fd: ours.as_raw_fd(),
        hold: true,
        ..Recorder::default()
    };
    // 5000 bytes are waiting; one single receive hands over one buffer's worth and ends.
    let sent: Vec<u8> = (0..5000u32).map(|i| (i * 3) as u8).collect();
    peer.write_all(&sent).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let recv = Token::new(Op::Recv, 2, 1);
    d.arm_receive(ours.as_raw_fd(), recv, Receive::Once)
        .unwrap();
    turn_until(&mut d, &mut h, |h| h.ended_receives == 1);
    assert_eq!(h.received, sent[..1024]);
    assert_eq!(h.held.len(), 1);
    assert_eq!(d.in_flight(), 0, "nothing stays armed");
    // Each further arm takes the next buffer, in order.
    while h.received.len() < sent.len() {
        d.arm_receive(ours.as_raw_fd(), recv, Receive::Once)
            .unwrap();
        let before = h.ended_receives;
        turn_until(&mut d, &mut h, |h| h.ended_receives == before + 1);
    }
    assert_eq!(h.received, sent);
    assert_eq!(h.held.len(), 5);
    for b in h.held.drain(..) {
        d.give_back(b);
    }
    assert_eq!(d.shutdown((), Duration::from_secs(1)), Drained::Complete);
}

#[test]
fn a_capped_receive_delivers_at_most_its_cap() {
    if !io_uring_or_skip("driver::a_capped_receive_delivers_at_most_its_cap") {
        return;
    }
    let mut d = small_driver(16, 1024);
    let (mut peer, ours) = pair();
    let mut h = Recorder {
        fd: ours.as_raw_fd(),
        hold: true,
        ..Recorder::default()
    };
    // 5000 bytes are waiting; a receive capped at 2500 bytes ends having delivered at most that:
    // two full 1024-byte buffers with the kernel's cap (a third could overshoot), one where the
    // driver falls back to a single receive. The next one carries on in order.
    let sent: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    peer.write_all(&sent).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let recv = Token::new(Op::Recv, 3, 1);
    let cap = Receive::Capped { bytes: 2500 };
    d.arm_receive(ours.as_raw_fd(), recv, cap).unwrap();
    turn_until(&mut d, &mut h, |h| h.ended_receives == 1);
    let first = h.received.len();
    if d.capped_receive() {
        assert_eq!(
            first, 2048,
            "a capped multishot receive stops within its cap"
        );
        assert_eq!(h.held.len(), 2);
    } else {
        assert_eq!(first, 1024, "without the cap: one buffer");
    }
    assert_eq!(d.in_flight(), 0, "the receive ended at its cap");
    // The rest, in order (the last receive, short of its cap, stays armed: shutdown cancels it).
    while h.received.len() < sent.len() {
        let before = h.ended_receives;
        d.arm_receive(ours.as_raw_fd(), recv, cap).unwrap();
        turn_until(&mut d, &mut h, |h| {
            h.ended_receives > before || h.received.len() == sent.len()
        });
    }
    assert_eq!(h.received, sent);
    for b in h.held.drain(..) {
        d.give_back(b);
    }
    assert_eq!(d.shutdown((), Duration::from_secs(1)), Drained::Complete);
}

#[test]
fn an_empty_buffer_ring_stops_the_receive_until_buffers_return() {
    if !io_uring_or_skip("driver::an_empty_buffer_ring_stops_the_receive_until_buffers_return") {
        return;
    }
    // Eight 256-byte buffers, all kept by the handler: the ninth delivery finds the ring empty.
    let mut d = small_driver(8, 256);
    let (mut peer, ours) = pair();
    let mut h = Recorder {
        fd: ours.as_raw_fd(),
        hold: true,
        ..Recorder::default()
    };
    let recv = Token::new(Op::Recv, 1, 2);
    d.arm_recv(ours.as_raw_fd(), recv).unwrap();
    let sent: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    peer.write_all(&sent).unwrap();
    turn_until(&mut d, &mut h, |h| h.starved == 1);
    assert_eq!(
        h.received.len(),
        8 * 256,
        "every buffer filled before ENOBUFS"
    );
    assert_eq!(d.starved(), 1, "the driver queued the starved receive");
    assert_eq!(d.in_flight(), 0);
    // Not re-armed while the handler holds every buffer.
    d.end_turn(&mut h).unwrap();
    assert!(h.resumed.is_empty());
    assert_eq!(d.starved(), 1);
    // Buffers come back: the driver offers the receive to the handler, which re-arms it.
    h.hold = false;
    for buf in h.held.drain(..) {
        d.give_back(buf);
    }
    d.end_turn(&mut h).unwrap();
    assert_eq!(h.resumed, vec![recv]);
    assert_eq!(d.in_flight(), 1);
    turn_until(&mut d, &mut h, |h| h.received.len() >= sent.len());
    assert_eq!(h.received, sent);
    assert_eq!(d.shutdown((), Duration::from_secs(1)), Drained::Complete);
}

/// Memory handed to `shutdown` is freed only after the kernel let go of every operation.
struct DropFlag<'a>(&'a std::cell::Cell<bool>);
impl Drop for DropFlag<'_> {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn shutdown_cancels_and_reaps_operations_in_flight() {
    if !io_uring_or_skip("driver::shutdown_cancels_and_reaps_operations_in_flight") {
        return;
    }
    let mut d = small_driver(4, 1024);
    let mut socks = Vec::new();
    for slot in 0..3 {
        let (peer, ours) = pair();
        d.arm_recv(ours.as_raw_fd(), Token::new(Op::Recv, slot, 1))
            .unwrap();
        socks.push((peer, ours));
    }
    let mut h = Recorder::default();
    d.turn(&mut h, Duration::from_millis(10)).unwrap();
    assert_eq!(d.in_flight(), 3, "three receives wait for data");
    let freed = std::cell::Cell::new(false);
    let drained = d.shutdown(DropFlag(&freed), Duration::from_secs(5));
    assert_eq!(drained, Drained::Complete);
    assert_eq!(d.in_flight(), 0);
    assert!(
        freed.get(),
        "owned memory is freed once nothing is in flight"
    );
}

/// Reads with a timeout after `setup` ran on this thread, while the peer writes 300 ms later.
fn read_after(setup: impl FnOnce()) -> std::io::Result<usize> {
    let (mut a, b) = pair();
    setup();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        (&b).write_all(b"x").unwrap();
        b
    });
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 8];
    let r = a.read(&mut buf);
    writer.join().unwrap();
    r
}

#[test]
fn probe_does_not_interrupt_the_calling_thread() {
    // A ring created and destroyed on this thread makes the kernel queue task work here, which
    // interrupts a blocking read that has a timeout. probe() keeps its ring on its own thread.
    assert_eq!(read_after(|| drop(probe())).unwrap(), 1);
}

fn busy_driver(busy_poll: Duration) -> Driver {
    let d = Driver::new(&DriverOptions {
        buffers: 4,
        buffer_size: 1024,
        busy_poll,
        ..DriverOptions::default()
    })
    .expect("driver");
    assert!(
        d.flags().taskrun_flag,
        "busy poll asks for TASKRUN_FLAG (kernel >= 6.0, checked by the probe)"
    );
    assert_eq!(d.busy_poll(), busy_poll, "busy poll is in force");
    d
}

/// Voluntary context switches of the calling thread so far: a thread that sleeps in a wait adds
/// one, a thread that spins adds none.
fn voluntary_switches() -> i64 {
    // SAFETY: getrusage writes the `rusage` on this stack frame only.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage.ru_nvcsw
    }
}

#[test]
fn busy_poll_returns_a_completion_that_arrives_while_spinning() {
    if !io_uring_or_skip("driver::busy_poll_returns_a_completion_that_arrives_while_spinning") {
        return;
    }
    // A spin far longer than the peer's delay, so that the completion comes during the spin
    // however slow the machine is.
    let mut d = busy_driver(Duration::from_secs(10));
    let (peer, ours) = pair();
    let mut h = Recorder {
        fd: ours.as_raw_fd(),
        ..Recorder::default()
    };
    d.arm_recv(ours.as_raw_fd(), Token::new(Op::Recv, 3, 1))
        .unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        (&peer).write_all(b"spun").unwrap();
        peer
    });
    let switches = voluntary_switches();
    // The wait submits the receive, finds nothing, spins until the bytes arrive.
    d.wait(Duration::from_secs(20)).unwrap();
    let slept = voluntary_switches() - switches;
    let peer = writer.join().unwrap();
    assert_eq!(
        d.wait_counts(),
        WaitCounts {
            ready: 0,
            spun: 1,
            blocked: 0
        },
        "the completion was picked up by the spin"
    );
    assert_eq!(slept, 0, "the thread never slept in the wait");
    assert_eq!(d.dispatch(&mut h).unwrap(), 1);
    assert_eq!(h.received, b"spun");
    drop(peer);
    assert_eq!(d.shutdown((), Duration::from_secs(1)), Drained::Complete);
}

#[test]
fn busy_poll_without_completions_ends_with_the_timeout() {
    if !io_uring_or_skip("driver::busy_poll_without_completions_ends_with_the_timeout") {
        return;
    }
    let (_peer, ours) = pair();
    // A spin shorter than the timeout: spin, then block for the rest, then return empty.
    let mut d = busy_driver(Duration::from_millis(20));
    d.arm_recv(ours.as_raw_fd(), Token::new(Op::Recv, 1, 1))
        .unwrap();
    let timeout = Duration::from_millis(100);
    let started = Instant::now();
    d.wait(timeout).unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= timeout,
        "returned after {waited:?}, before its timeout"
    );
    assert!(waited < Duration::from_secs(5), "a wait is bounded");
    let counts = d.wait_counts();
    assert_eq!((counts.ready, counts.spun, counts.blocked), (0, 0, 1));
    assert_eq!(d.dispatch(&mut Recorder::default()).unwrap(), 0);
    assert_eq!(d.shutdown((), Duration::from_secs(1)), Drained::Complete);

    // A spin longer than the timeout is cut to the timeout.
    let mut d = busy_driver(Duration::from_secs(30));
    d.arm_recv(ours.as_raw_fd(), Token::new(Op::Recv, 2, 1))
        .unwrap();
    let started = Instant::now();
    d.wait(Duration::from_millis(30)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the spin ends with the wait's timeout, not the busy poll's"
    );
    assert_eq!(d.wait_counts().blocked, 1);
    assert_eq!(d.shutdown((), Duration::from_secs(1)), Drained::Complete);

    // Without busy poll every wait goes to the kernel, and the ring is built as before.
    let mut d = small_driver(4, 1024);
    assert!(!d.flags().taskrun_flag);
    d.wait(Duration::from_millis(1)).unwrap();
    assert_eq!(
        d.wait_counts(),
        WaitCounts {
            ready: 0,
            spun: 0,
            blocked: 1
        }
    );
}
