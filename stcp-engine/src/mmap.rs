//! Anonymous, page-aligned, pre-faulted memory regions (the kernel wants page-aligned buffer rings,
//! and pre-faulting keeps page faults off the hot path).

use std::{io, ptr::NonNull};

/// An owned anonymous mapping, unmapped on drop.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    /// Maps `len` bytes (rounded up by the kernel to whole pages), zeroed and populated.
    pub fn new(len: usize) -> io::Result<Region> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh anonymous private mapping aliases nothing; we own it until `drop`.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Region { ptr, len })
    }

    /// Start of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr/len` is exactly the mapping created in `new`; owners of a `Region` that
        // lent it to the kernel (buffer rings, fixed buffers) drop it only after the ring that used
        // it is gone or the registration was removed (see their docs).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

// SAFETY: a Region is plain memory owned by one value; moving it to another thread moves ownership.
unsafe impl Send for Region {}
