//! The scan's writer thread: `alert → stdout` behind the detector.
//!
//! [`Chunks`] is the detector thread's output: it gathers the JSON lines into chunks and
//! hands each full one to a thread that writes it, so the `write` calls (the copy into the
//! page cache or the pipe) run on a CPU of their own. Spent chunks come back to be filled
//! again. The first write error stops the writer; the detector thread's next hand-over then
//! fails, and [`Chunks::finish`] gives the writer's own error.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::mem;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

/// A chunk is handed over once it holds this many bytes.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight: the detector may run this far ahead of the output.
const IN_FLIGHT: usize = 4;

/// The writing end the detector thread holds; see the module documentation.
pub(super) struct Chunks<'scope> {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    back: Receiver<Vec<u8>>,
    thread: ScopedJoinHandle<'scope, io::Result<()>>,
}

impl<'scope> Chunks<'scope> {
    /// Starts the writer thread on `out`, within `scope`.
    pub fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        out: &'scope mut (dyn Write + Send),
    ) -> io::Result<Chunks<'scope>> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (back_tx, back) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wwatchd-writer".into())
            .spawn_scoped(scope, move || {
                for mut chunk in rx {
                    out.write_all(&chunk)?;
                    chunk.clear();
                    let _ = back_tx.send(chunk);
                }
                out.flush()
            })?;
        Ok(Chunks {
            buf: Vec::with_capacity(CHUNK + 64 * 1024),
            tx: Some(tx),
            back,
            thread,
        })
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK + 64 * 1024));
        let full = mem::replace(&mut self.buf, next);
        match &self.tx {
            Some(tx) if tx.send(full).is_ok() => Ok(()),
            // The writer has stopped: `finish` gives its error.
            _ => Err(io::Error::other("the output writer has stopped")),
        }
    }

    /// Writes what is left, waits for the writer and gives its result: the first error of
    /// the output, if any.
    pub fn finish(mut self) -> io::Result<()> {
        let handed = self.hand_over();
        self.tx = None; // the writer's loop ends with the last chunk
        let written = self
            .thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the output writer panicked")));
        written.and(handed)
    }
}

impl Write for Chunks<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.hand_over()?;
        }
        Ok(data.len())
    }

    /// Hands the chunk over; the writer flushes its output at [`Chunks::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte arrives once, in order, across many chunks.
    #[test]
    fn every_byte_is_written_in_order() {
        let mut out = Vec::new();
        let want: Vec<u8> = (0..CHUNK * 5 + 17).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|s| {
            let mut w = Chunks::spawn(s, &mut out).unwrap();
            for piece in want.chunks(1000) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
        });
        assert_eq!(out, want);
    }

    /// An output that fails: the writes after it fail, and `finish` gives the output's own
    /// error, not the hand-over's.
    #[test]
    fn the_outputs_error_comes_back() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(28)) // ENOSPC
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = Full;
        std::thread::scope(|s| {
            let mut w = Chunks::spawn(s, &mut out).unwrap();
            let piece = vec![b'x'; CHUNK];
            let failed = (0..IN_FLIGHT + 8).any(|_| w.write_all(&piece).is_err());
            assert!(failed, "a write after the output failed must fail");
            // Left in the chunk: `finish` hands it over, which fails too.
            w.write_all(b"rest").unwrap();
            let e = w.finish().unwrap_err();
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
        });
    }
}
