//! A worker's pool of heap buffers for frames larger than a ring buffer (reassembly), handshake
//! replies and close records. Buffers come back with their capacity, so the steady state does
//! not allocate; the pool itself is bounded in count, in the capacity of each buffer it keeps,
//! and in the capacity it keeps in total (so a burst of large frames from many connections does
//! not stay resident after they are gone).

/// Most buffers kept.
const MAX_POOLED: usize = 256;
/// Buffers with more capacity than this are freed instead of kept.
const MAX_KEPT_CAPACITY: usize = 2 << 20;
/// Most capacity kept over all free buffers.
pub const MAX_POOLED_BYTES: usize = 32 << 20;

/// Free heap buffers.
#[derive(Default)]
pub struct BufPool {
    free: Vec<Vec<u8>>,
    /// Sum of the free buffers' capacities.
    idle_bytes: usize,
}

impl BufPool {
    /// An empty buffer (with whatever capacity a returned one had).
    pub fn get(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buf) => {
                self.idle_bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// Returns a buffer (kept for reuse when the pool's bounds allow, freed otherwise).
    pub fn put(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if self.free.len() < MAX_POOLED
            && cap <= MAX_KEPT_CAPACITY
            && cap > 0
            && self.idle_bytes + cap <= MAX_POOLED_BYTES
        {
            buf.clear();
            self.idle_bytes += cap;
            self.free.push(buf);
        }
    }

    /// Capacity of the free buffers kept.
    pub fn idle_bytes(&self) -> usize {
        self.idle_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_capacity_within_its_bounds() {
        let mut pool = BufPool::default();
        pool.put(Vec::with_capacity(1000));
        assert_eq!(pool.idle_bytes(), 1000);
        let b = pool.get();
        assert_eq!(b.capacity(), 1000);
        assert_eq!(pool.idle_bytes(), 0);
        // Too large to keep.
        pool.put(Vec::with_capacity(MAX_KEPT_CAPACITY + 1));
        assert_eq!(pool.idle_bytes(), 0);
        // The total stays under MAX_POOLED_BYTES.
        for _ in 0..(MAX_POOLED_BYTES / MAX_KEPT_CAPACITY + 4) {
            pool.put(Vec::with_capacity(MAX_KEPT_CAPACITY));
        }
        assert!(pool.idle_bytes() <= MAX_POOLED_BYTES);
        assert_eq!(pool.idle_bytes(), MAX_POOLED_BYTES);
        while pool.get().capacity() > 0 {}
        assert_eq!(pool.idle_bytes(), 0);
    }
}
