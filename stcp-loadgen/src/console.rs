//! Lines for the terminal that cannot panic. `eprintln!` and `println!` panic when their stream
//! is a pipe whose reader went away (`stcp-loadgen ... 2>&1 | head`), which would end a run
//! before its report is written; these macros lose the line instead and the run goes on.

/// `eprintln!` that loses the line on a closed stderr instead of panicking.
#[macro_export]
macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// `eprint!` that loses the text on a closed stderr instead of panicking.
#[macro_export]
macro_rules! stderr_text {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// `println!` that loses the line on a closed stdout instead of panicking.
#[macro_export]
macro_rules! stdout_line {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that loses the text on a closed stdout instead of panicking.
#[macro_export]
macro_rules! stdout_text {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!(::std::io::stdout().lock(), $($arg)*);
    }};
}
