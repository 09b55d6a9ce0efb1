//! The io_uring layer against a real loopback socket: multishot recv into a buffer ring, copying
//! send and zero-copy send from registered buffers, typed tokens, cancel.

mod common;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use stcp_server::uring::{
    self, io_uring::cqueue, ops, BufRing, FixedBuffers, Op, RingOptions, Token,
};

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

#[test]
fn probe_names_a_cause_or_supports_the_layer() {
    match uring::probe() {
        Ok(s) => assert!(s.buf_ring),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn multishot_recv_send_and_send_zc_round_trip() {
    if !common::uring_available() {
        return;
    }
    let (mut ring, flags) = uring::build_ring(&RingOptions::default()).unwrap();
    assert!(
        flags.single_issuer,
        "this kernel supports SINGLE_ISSUER (>= 6.0 checked by probe)"
    );
    let mut bufs = BufRing::new(4, 1024, 3).unwrap();
    let mut fixed = FixedBuffers::new(2, 4096).unwrap();
    // SAFETY: `bufs` and `fixed` are dropped after `ring` (explicit drops at the end).
    unsafe {
        bufs.register(&ring.submitter()).unwrap();
        uring::register_fixed_table(&ring.submitter(), &[bufs.data_iovec()], Some(&mut fixed))
            .unwrap();
    }
    let (mut peer, ours) = pair();
    let fd = ours.as_raw_fd();
    let recv_tok = Token::new(Op::Recv, 5, 9);
    uring::push(&mut ring, &ops::recv_multi(fd, &bufs, recv_tok)).unwrap();

    // Peer -> us: 3000 bytes, more than one 1024-byte ring buffer.
    let sent: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    peer.write_all(&sent).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < sent.len() && Instant::now() < deadline {
        uring::submit_and_wait(&ring, 1, Some(Duration::from_millis(200))).unwrap();
        let cqes: Vec<_> = ring
            .completion()
            .map(|c| (c.user_data(), c.result(), c.flags()))
            .collect();
        for (ud, res, fl) in cqes {
            assert_eq!(Token::from_user_data(ud), Some(recv_tok));
            assert!(res > 0, "recv result {res}");
            assert!(cqueue::more(fl));
            let buf = bufs.take(fl, res as u32).unwrap();
            got.extend_from_slice(bufs.bytes(&buf));
            bufs.give_back(buf);
        }
        bufs.commit();
    }
    assert_eq!(got, sent);

    // Us -> peer: a copying send from a ring-sized Vec and a zero-copy send from a fixed buffer.
    let msg = b"copying send".to_vec();
    let send_tok = Token::new(Op::Send, 5, 9);
    // SAFETY: `msg` outlives the wait for this send's completion below.
    uring::push(&mut ring, &unsafe {
        ops::send(fd, msg.as_ptr(), msg.len() as u32, send_tok)
    })
    .unwrap();
    let mut fb = fixed.alloc().unwrap();
    fixed.bytes_mut(&mut fb)[..9].copy_from_slice(b"zerocopy!");
    let zc_tok = Token::new(Op::SendZc, 5, 9);
    // SAFETY: the slot lies in registered buffer `fb.buf_index()` and is not freed until the
    // notification CQE is seen below.
    let zc = unsafe { ops::send_zc_fixed(fd, fixed.ptr(&fb), 9, fb.buf_index(), zc_tok) };
    let (mut send_done, mut zc_done, mut zc_notified) = (false, false, false);
    // Cancel the multishot recv too: it must complete with -ECANCELED under its own token.
    let mut recv_cancelled = false;
    uring::push(
        &mut ring,
        &ops::cancel(recv_tok, Token::new(Op::Cancel, 5, 9)),
    )
    .unwrap();
    // Order matters on the wire: submit the copying send first and reap it before the zc send.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut zc_pushed = false;
    while !(send_done && zc_done && zc_notified && recv_cancelled) && Instant::now() < deadline {
        if send_done && !zc_pushed {
            uring::push(&mut ring, &zc).unwrap();
            zc_pushed = true;
        }
        uring::submit_and_wait(&ring, 1, Some(Duration::from_millis(200))).unwrap();
        let cqes: Vec<_> = ring
            .completion()
            .map(|c| (c.user_data(), c.result(), c.flags()))
            .collect();
        for (ud, res, fl) in cqes {
            let t = Token::from_user_data(ud).unwrap();
            match t.op {
                Op::Send => {
                    assert_eq!(res, msg.len() as i32);
                    send_done = true;
                }
                Op::SendZc if cqueue::notif(fl) => zc_notified = true,
                Op::SendZc => {
                    assert_eq!(res, 9);
                    zc_done = true;
                }
                Op::Recv => {
                    assert_eq!(res, -libc::ECANCELED);
                    assert!(!cqueue::more(fl));
                    recv_cancelled = true;
                }
                Op::Cancel => assert!(res >= 0, "cancel result {res}"),
                other => panic!("unexpected completion {other:?}"),
            }
        }
    }
    assert!(send_done && zc_done && zc_notified && recv_cancelled);
    fixed.free(fb);
    let mut back = [0u8; 21];
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    peer.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"copying sendzerocopy!");
    drop(ring);
    drop(bufs);
    drop(fixed);
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
    assert_eq!(read_after(|| drop(uring::probe())).unwrap(), 1);
}
