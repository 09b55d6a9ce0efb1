//! Randomness from the kernel (getrandom(2)): handshake ephemeral keys and the embedded
//! server's keypair.

/// 32 bytes from the kernel's CSPRNG.
pub fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let mut filled = 0;
    while filled < seed.len() {
        // SAFETY: getrandom(2) writes at most `len - filled` bytes into `seed[filled..]`, which
        // lives on this stack frame.
        let n =
            unsafe { libc::getrandom(seed[filled..].as_mut_ptr().cast(), seed.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            panic!("getrandom(2) failed: {}", std::io::Error::last_os_error());
        }
    }
    seed
}
