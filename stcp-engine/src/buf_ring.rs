//! Provided buffer ring (`IORING_REGISTER_PBUF_RING`): a ring of equal-sized buffers that the
//! kernel picks from for multishot receives. Ownership of each buffer is tracked: it belongs to the
//! kernel while it is in the ring, and to the application from the CQE that names it (see
//! [`BufRing::take`]) until it is handed back with [`BufRing::give_back`].

use std::{
    io,
    sync::atomic::{AtomicU16, AtomicU32, Ordering},
};

use io_uring::{cqueue, types::BufRingEntry, Submitter};

use crate::mmap::Region;

/// A ring buffer the application owns (taken from a CQE). Not `Clone`: giving it back consumes it,
/// so a buffer cannot be handed to the kernel twice.
#[derive(Debug)]
pub struct RingBuf {
    ring_id: u32,
    bid: u16,
    len: u32,
}

impl RingBuf {
    /// Buffer id.
    pub fn bid(&self) -> u16 {
        self.bid
    }
    /// Number of bytes the kernel wrote.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// True when the kernel wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A provided buffer ring with its buffer memory.
///
/// Memory: the ring entries and the buffers live in two anonymous mappings owned by this value.
/// Drop it only after the io_uring it is registered with has been dropped (or after
/// [`BufRing::unregister`]) and no receive that may select from it is in flight.
pub struct BufRing {
    /// Process-unique id, so a [`RingBuf`] of another ring is never accepted.
    id: u32,
    entries: Region,
    data: Region,
    count: u16,
    mask: u16,
    buf_size: u32,
    bgid: u16,
    /// Local tail: entries written but maybe not yet published.
    tail: u16,
    /// True for buffers the application holds.
    app_owned: Vec<bool>,
    app_owned_count: usize,
}

impl BufRing {
    /// Allocates `count` buffers of `buf_size` bytes for buffer group `bgid` and puts all of them in
    /// the ring. `count` is rounded up to a power of two (at most 32768).
    pub fn new(count: u16, buf_size: u32, bgid: u16) -> io::Result<BufRing> {
        let count = count
            .max(1)
            .checked_next_power_of_two()
            .filter(|c| *c <= 32768)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "buffer ring count must be <= 32768",
                )
            })?;
        if buf_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer size must be > 0",
            ));
        }
        let entries = Region::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let data = Region::new(count as usize * buf_size as usize)?;
        static NEXT_ID: AtomicU32 = AtomicU32::new(1);
        let mut ring = BufRing {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            entries,
            data,
            count,
            mask: count - 1,
            buf_size,
            bgid,
            tail: 0,
            app_owned: vec![false; count as usize],
            app_owned_count: 0,
        };
        for bid in 0..count {
            ring.write_entry(bid);
        }
        ring.commit();
        Ok(ring)
    }

    /// Registers the ring with the kernel under its buffer group id.
    ///
    /// # Safety
    /// This value must outlive the registration: do not drop it while the io_uring behind
    /// `submitter` exists with the ring registered (unregister first, or drop the io_uring first).
    pub unsafe fn register(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        submitter.register_buf_ring_with_flags(
            self.entries.as_ptr() as u64,
            self.count,
            self.bgid,
            0,
        )
    }

    /// Removes the registration.
    pub fn unregister(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        submitter.unregister_buf_ring(self.bgid)
    }

    /// Buffer group id to put in receive SQEs.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.buf_size as usize
    }

    /// Number of buffers.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Buffers currently in the kernel's hands (given back, maybe not yet published).
    pub fn available(&self) -> usize {
        self.count as usize - self.app_owned_count
    }

    /// Takes ownership of the buffer a completion names (its `flags` carry the buffer id) holding
    /// `len` received bytes. `None` when the completion carries no buffer. A buffer id that is
    /// already owned by the application or out of range is a kernel protocol violation and is
    /// reported as `None` too (nothing is aliased).
    pub fn take(&mut self, cqe_flags: u32, len: u32) -> Option<RingBuf> {
        let bid = cqueue::buffer_select(cqe_flags)?;
        let owned = self.app_owned.get_mut(bid as usize)?;
        if *owned || len > self.buf_size {
            return None;
        }
        *owned = true;
        self.app_owned_count += 1;
        Some(RingBuf {
            ring_id: self.id,
            bid,
            len,
        })
    }

    /// The received bytes of `buf`.
    ///
    /// # Panics
    /// When `buf` was taken from another ring (a programming error).
    pub fn bytes<'a>(&'a self, buf: &'a RingBuf) -> &'a [u8] {
        self.check(buf);
        // SAFETY: `buf` proves the application owns buffer `bid` of this ring (checked above; the
        // kernel will not select it until it is given back); `bid < count` and
        // `len <= buf_size` were checked in `take`, so the slice lies inside `data`, which lives
        // as long as `self`.
        unsafe { std::slice::from_raw_parts(self.buf_ptr(buf.bid), buf.len as usize) }
    }

    /// The received bytes of `buf`, mutable (in-place decryption and resealing). Only a shared
    /// borrow of the ring is needed, so several owned buffers can be worked on at once.
    ///
    /// # Panics
    /// When `buf` was taken from another ring (a programming error).
    pub fn bytes_mut<'a>(&'a self, buf: &'a mut RingBuf) -> &'a mut [u8] {
        self.check(buf);
        // SAFETY: as in `bytes`. `RingBuf` is neither Clone nor Copy and `take` hands out each
        // buffer id once until it is given back, so `&mut RingBuf` makes this the only live view of
        // that buffer's bytes; the memory comes from the mapping's raw pointer, not from `&self`.
        unsafe { std::slice::from_raw_parts_mut(self.buf_ptr(buf.bid), buf.len as usize) }
    }

    /// Raw pointer to the start of `buf`, to point a send SQE at it. The memory stays valid while
    /// `self` lives; the caller must keep `buf` (not give it back) until that send completes.
    pub fn ptr(&self, buf: &RingBuf) -> *const u8 {
        self.check(buf);
        self.buf_ptr(buf.bid)
    }

    /// Hands `buf` back to the kernel. It becomes selectable after [`BufRing::commit`].
    pub fn give_back(&mut self, buf: RingBuf) {
        self.check(&buf);
        self.app_owned[buf.bid as usize] = false;
        self.app_owned_count -= 1;
        self.write_entry(buf.bid);
    }

    /// Publishes every buffer given back since the last commit (one release store).
    pub fn commit(&mut self) {
        // SAFETY: the tail field overlays `resv` of entry 0 inside `entries`, which is page aligned
        // and lives as long as `self`; the kernel only reads it, so an atomic store is the protocol.
        let tail =
            unsafe { &*(BufRingEntry::tail(self.entries.as_ptr().cast()) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    fn check(&self, buf: &RingBuf) {
        assert_eq!(buf.ring_id, self.id, "RingBuf used with another BufRing");
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: callers pass `bid < count`; the offset stays inside `data`.
        unsafe {
            self.data
                .as_ptr()
                .add(bid as usize * self.buf_size as usize)
        }
    }

    fn write_entry(&mut self, bid: u16) {
        let idx = (self.tail & self.mask) as usize;
        // SAFETY: `idx < count`, so the entry lies inside `entries`. The kernel reads entries only
        // between its head and the published tail; this slot is past the published tail until
        // `commit`, so the kernel is not reading it now. Entry 0's `resv` (the tail) is not touched:
        // only addr/len/bid are written.
        unsafe {
            let e = &mut *self.entries.as_ptr().cast::<BufRingEntry>().add(idx);
            e.set_addr(self.buf_ptr(bid) as u64);
            e.set_len(self.buf_size);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F_BUFFER: u32 = 1; // IORING_CQE_F_BUFFER
    fn flags_for(bid: u16) -> u32 {
        ((bid as u32) << 16) | F_BUFFER
    }

    #[test]
    fn ownership_is_tracked_and_double_take_refused() {
        let mut r = BufRing::new(3, 128, 7).unwrap();
        assert_eq!(r.count(), 4);
        assert_eq!(r.available(), 4);
        let mut b = r.take(flags_for(2), 100).unwrap();
        assert!(r.take(flags_for(2), 10).is_none(), "already owned");
        assert!(r.take(flags_for(9), 10).is_none(), "out of range");
        assert!(r.take(flags_for(1), 129).is_none(), "longer than a buffer");
        assert!(r.take(0, 10).is_none(), "no buffer flag");
        assert_eq!(r.available(), 3);
        let mut c = r.take(flags_for(0), 3).unwrap();
        // Two owned buffers can be borrowed mutably at once.
        let (x, y) = (r.bytes_mut(&mut b), r.bytes_mut(&mut c));
        x.fill(0xab);
        y.fill(0xcd);
        assert!(r.bytes(&c).iter().all(|&v| v == 0xcd));
        r.give_back(c);
        assert!(r.bytes(&b).iter().all(|&x| x == 0xab));
        assert_eq!(r.bytes(&b).len(), 100);
        r.give_back(b);
        r.commit();
        assert_eq!(r.available(), 4);
        assert!(r.take(flags_for(2), 1).is_some());
    }

    #[test]
    #[should_panic(expected = "another BufRing")]
    fn a_buffer_of_another_ring_is_refused() {
        let mut a = BufRing::new(2, 64, 1).unwrap();
        let b = BufRing::new(2, 64, 1).unwrap();
        let buf = a.take(flags_for(0), 8).unwrap();
        let _ = b.bytes(&buf);
    }

    #[test]
    fn registers_with_a_real_ring() {
        if !crate::io_uring_or_skip("buf_ring::registers_with_a_real_ring") {
            return;
        }
        let (ring, _) = crate::build_ring(&Default::default()).unwrap();
        let mut r = BufRing::new(8, 4096, 1).unwrap();
        // SAFETY: unregistered before `r` is dropped; nothing is submitted.
        unsafe { r.register(&ring.submitter()).unwrap() };
        r.unregister(&ring.submitter()).unwrap();
    }
}
