//! Lines for the terminal that cannot panic, for both binaries. `eprintln!` and `println!` panic
//! when their stream is a pipe whose reader went away (`stcp-loadgen ... 2>&1 | head`), which
//! would end a load run before its report is written, or turn a server's clean exit into a
//! panic; these macros lose the line instead and the program goes on.

/// Writes to `std::io::$stream()` with `$write!`, ignoring a failed write.
#[doc(hidden)]
#[macro_export]
macro_rules! __lossy_write {
    ($stream:ident, $write:ident, $($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::$write!(::std::io::$stream().lock(), $($arg)*);
    }};
}

/// `eprintln!` that loses the line on a closed stderr instead of panicking.
#[macro_export]
macro_rules! stderr_line {
    ($($arg:tt)*) => { $crate::__lossy_write!(stderr, writeln, $($arg)*) };
}

/// `eprint!` that loses the text on a closed stderr instead of panicking.
#[macro_export]
macro_rules! stderr_text {
    ($($arg:tt)*) => { $crate::__lossy_write!(stderr, write, $($arg)*) };
}

/// `println!` that loses the line on a closed stdout instead of panicking.
#[macro_export]
macro_rules! stdout_line {
    ($($arg:tt)*) => { $crate::__lossy_write!(stdout, writeln, $($arg)*) };
}

/// `print!` that loses the text on a closed stdout instead of panicking.
#[macro_export]
macro_rules! stdout_text {
    ($($arg:tt)*) => { $crate::__lossy_write!(stdout, write, $($arg)*) };
}
