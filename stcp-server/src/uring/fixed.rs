//! Registered (fixed) buffers: a table of memory regions registered once with
//! `IORING_REGISTER_BUFFERS`, so sends/writes can name them by index instead of the kernel pinning
//! user pages per operation. [`FixedBuffers`] is a pool of equal slots in one mapping; other
//! regions (e.g. a [`super::BufRing`]'s memory) can share the table.

use std::io;

use io_uring::Submitter;

use super::mmap::Region;

/// One slot of a [`FixedBuffers`] pool, owned by the application until [`FixedBuffers::free`].
/// Not `Clone`, so a slot cannot be freed twice.
#[derive(Debug)]
pub struct FixedBuf {
    slot: u16,
    buf_index: u16,
}

impl FixedBuf {
    /// Index of this buffer in the registered table (put it in `buf_index` of the SQE).
    pub fn buf_index(&self) -> u16 {
        self.buf_index
    }
}

/// A pool of `count` registered buffers of `buf_size` bytes each.
///
/// Memory: one anonymous mapping owned by this value; registration pins its pages. Drop it only
/// after the io_uring it is registered with is gone (or its buffers were unregistered) and no
/// operation using a slot is in flight.
pub struct FixedBuffers {
    mem: Region,
    buf_size: usize,
    count: u16,
    base_index: u16,
    free: Vec<u16>,
}

impl FixedBuffers {
    /// Allocates `count` slots of `buf_size` bytes.
    pub fn new(count: u16, buf_size: usize) -> io::Result<FixedBuffers> {
        if count == 0 || buf_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty fixed buffer pool",
            ));
        }
        let mem = Region::new(count as usize * buf_size)?;
        Ok(FixedBuffers {
            mem,
            buf_size,
            count,
            base_index: 0,
            free: (0..count).rev().collect(),
        })
    }

    /// Size of each slot.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Free slots left.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// One iovec per slot, in slot order, for a registration table.
    pub fn iovecs(&self) -> impl Iterator<Item = libc::iovec> + '_ {
        (0..self.count).map(|s| libc::iovec {
            iov_base: self.slot_ptr(s).cast(),
            iov_len: self.buf_size,
        })
    }

    /// Takes a free slot.
    pub fn alloc(&mut self) -> Option<FixedBuf> {
        let slot = self.free.pop()?;
        Some(FixedBuf {
            slot,
            buf_index: self.base_index + slot,
        })
    }

    /// Returns a slot to the pool. The caller must not free it while an operation uses it.
    pub fn free(&mut self, buf: FixedBuf) {
        self.free.push(buf.slot);
    }

    /// The whole slot, for filling.
    pub fn bytes_mut(&mut self, buf: &mut FixedBuf) -> &mut [u8] {
        // SAFETY: the slot lies inside `mem` (slot < count); `&mut FixedBuf` is the only handle to it.
        unsafe { std::slice::from_raw_parts_mut(self.slot_ptr(buf.slot), self.buf_size) }
    }

    /// The whole slot.
    pub fn bytes(&self, buf: &FixedBuf) -> &[u8] {
        // SAFETY: as in `bytes_mut`, shared.
        unsafe { std::slice::from_raw_parts(self.slot_ptr(buf.slot), self.buf_size) }
    }

    /// Start of the slot, for an SQE.
    pub fn ptr(&self, buf: &FixedBuf) -> *const u8 {
        self.slot_ptr(buf.slot)
    }

    fn slot_ptr(&self, slot: u16) -> *mut u8 {
        // SAFETY: slot < count, so the offset is inside `mem`.
        unsafe { self.mem.as_ptr().add(slot as usize * self.buf_size) }
    }
}

/// Builds and registers a fixed-buffer table: `extra` regions first (indices `0..extra.len()`),
/// then every slot of `pool` (whose `buf_index` values are set accordingly).
///
/// # Safety
/// Every region in `extra` and `pool` must stay mapped until the io_uring behind `submitter` is
/// dropped or its buffers are unregistered.
pub unsafe fn register_fixed_table(
    submitter: &Submitter<'_>,
    extra: &[libc::iovec],
    pool: Option<&mut FixedBuffers>,
) -> io::Result<()> {
    let mut table: Vec<libc::iovec> = extra.to_vec();
    if let Some(pool) = pool {
        pool.base_index = u16::try_from(table.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many fixed buffers"))?;
        table.extend(pool.iovecs());
    }
    if table.len() > u16::MAX as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many fixed buffers",
        ));
    }
    submitter.register_buffers(&table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_hands_out_distinct_slots() {
        let mut p = FixedBuffers::new(2, 64).unwrap();
        let mut a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        assert!(p.alloc().is_none());
        assert_ne!(a.buf_index(), b.buf_index());
        p.bytes_mut(&mut a).fill(1);
        assert!(p.bytes(&b).iter().all(|&x| x == 0));
        p.free(a);
        assert_eq!(p.available(), 1);
    }
}
