//! The commands' standard output. `print!` panics when the reader has gone away
//! (`tether demo | head -n 3`); here a closed pipe ends the output, not the command: the
//! rest of the output is dropped quietly, and the command finishes its work (an apply is not
//! cut off mid-write because a pager quit) and exits as it would have. Any other failure to
//! write is kept and reported once the command is done.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);
static FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// Writes to stdout (what `out!` and `outln!` call).
pub fn write(args: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let result = std::io::stdout().lock().write_fmt(args);
    failed(result);
}

/// Sends what is buffered (a prompt without a line break, or the end of the output).
pub fn flush() {
    if !CLOSED.load(Ordering::Relaxed) {
        failed(std::io::stdout().lock().flush());
    }
}

fn failed(result: std::io::Result<()>) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            CLOSED.store(true, Ordering::Relaxed);
            let mut failure = FAILURE.lock().unwrap_or_else(|e| e.into_inner());
            failure.get_or_insert_with(|| format!("cannot write the output: {e}"));
        }
    }
}

/// Why the output could not be written, other than its reader going away.
pub fn failure() -> Option<String> {
    flush();
    FAILURE.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// `print!` that survives a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*)) };
}

/// `println!` that survives a closed stdout.
macro_rules! outln {
    () => { $crate::cli::output::write(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};
