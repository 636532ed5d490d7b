//! `println!`, `print!`, `eprintln!` and `eprint!` for the whole binary, in
//! place of std's (`#[macro_use]` in `main.rs` makes these shadow them).
//!
//! std's panic when the reader of a pipe has gone (`freshen images packages
//! REF | head -1` ended with a panic and exit 101). These stop writing to
//! that stream instead, and the command runs to its end and exits with its
//! own status: a reader that left must not cut a promotion or a delivery
//! short. SIGPIPE stays ignored (Rust's default) rather than reset to kill
//! the process for the same reason, and because freshen writes to the pipes
//! of the programs it runs (command triggers, builders), where a child that
//! exits early is an error to report, not a reason to die.
//!
//! Any other write error (a full disk behind `> file`) also stops the
//! stream, and [`failure`] hands it to `main`, which reports it and exits 2.

use std::fmt;
use std::io::{self, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a macro writes.
#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Out,
    Err,
}

/// Set once a write to stdout failed: nothing more is written there.
static OUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The same for stderr.
static ERR_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error that was not a closed pipe.
static FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// Writes `args` to `stream`, unless an earlier write to it failed.
pub(crate) fn write(stream: Stream, args: fmt::Arguments<'_>) {
    let closed = match stream {
        Stream::Out => &OUT_CLOSED,
        Stream::Err => &ERR_CLOSED,
    };
    if closed.load(Ordering::Relaxed) {
        return;
    }
    let written = match stream {
        Stream::Out => {
            let mut out = io::stdout().lock();
            out.write_fmt(args).and_then(|()| out.flush())
        }
        Stream::Err => io::stderr().lock().write_fmt(args),
    };
    if let Err(e) = written {
        closed.store(true, Ordering::Relaxed);
        if e.kind() != io::ErrorKind::BrokenPipe {
            let name = match stream {
                Stream::Out => "the output",
                Stream::Err => "to stderr",
            };
            let mut failure = FAILURE.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| format!("cannot write {name}: {e}"));
        }
    }
}

/// The first write that failed other than on a closed pipe, as a message.
pub(crate) fn failure() -> Option<String> {
    FAILURE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

macro_rules! println {
    () => {
        $crate::print::write($crate::print::Stream::Out, format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::print::write(
            $crate::print::Stream::Out,
            format_args!("{}\n", format_args!($($arg)*)),
        )
    };
}

macro_rules! print {
    ($($arg:tt)*) => {
        $crate::print::write($crate::print::Stream::Out, format_args!($($arg)*))
    };
}

macro_rules! eprintln {
    () => {
        $crate::print::write($crate::print::Stream::Err, format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::print::write(
            $crate::print::Stream::Err,
            format_args!("{}\n", format_args!($($arg)*)),
        )
    };
}

#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::print::write($crate::print::Stream::Err, format_args!($($arg)*))
    };
}
