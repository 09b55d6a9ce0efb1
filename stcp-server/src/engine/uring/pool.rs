//! A worker's pool of heap buffers for frames larger than a ring buffer (reassembly), handshake
//! replies and close records. Buffers come back with their capacity, so the steady state does
//! not allocate; the pool itself is bounded in count and in the capacity it keeps.

/// Most buffers kept.
const MAX_POOLED: usize = 256;
/// Buffers with more capacity than this are freed instead of kept.
const MAX_KEPT_CAPACITY: usize = 2 << 20;

/// Free heap buffers.
#[derive(Default)]
pub struct BufPool {
    free: Vec<Vec<u8>>,
}

impl BufPool {
    /// An empty buffer (with whatever capacity a returned one had).
    pub fn get(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    /// Returns a buffer.
    pub fn put(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < MAX_POOLED && buf.capacity() <= MAX_KEPT_CAPACITY && buf.capacity() > 0
        {
            buf.clear();
            self.free.push(buf);
        }
    }
}
