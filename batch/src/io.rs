//! The bridge between the scoring loop, which runs on a blocking thread,
//! and the object store's asynchronous streams.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};

use aimass_storage::ByteStream;
use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::runtime::Handle;

/// Reads a streamed object as `std::io::Read`, one chunk at a time, so the
/// data set is never held whole.
pub struct BlockingRead {
    handle: Handle,
    stream: ByteStream,
    chunk: Bytes,
    lines: Arc<Mutex<Lines>>,
}

impl BlockingRead {
    /// Reads `stream` with the runtime of `handle`, feeding `lines`.
    pub fn new(handle: Handle, stream: ByteStream, lines: Arc<Mutex<Lines>>) -> Self {
        Self {
            handle,
            stream,
            chunk: Bytes::new(),
            lines,
        }
    }
}

impl Read for BlockingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.lines
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .feed(chunk.clone());
                    self.chunk = chunk;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        self.chunk.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

/// Line numbers of the data set's records, counted on the raw bytes (the
/// CSV reader's own count drifts on CRLF files with blank lines). Holds the
/// bytes read but not yet passed, a bounded window behind the reader.
#[derive(Debug, Default)]
pub struct Lines {
    chunks: VecDeque<Bytes>,
    front_start: u64,
    counted_to: u64,
    newlines: u64,
    last: Option<u8>,
}

impl Lines {
    /// Adds bytes as they are read.
    pub fn feed(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.chunks.push_back(chunk);
        }
    }

    /// The line a record starts on, given where the reader stands after it
    /// (`end`, increasing from call to call) and the newlines inside its
    /// fields: the newlines before `end`, less the record's own terminator
    /// when `end` is past it (LF) rather than on it (CRLF), less those
    /// inside it.
    pub fn record_line(&mut self, end: u64, newlines_inside: u64) -> u64 {
        while self.counted_to < end {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let chunk_end = self.front_start + front.len() as u64;
            let upto = end.min(chunk_end);
            let from = usize::try_from(self.counted_to - self.front_start).unwrap_or(usize::MAX);
            let to = usize::try_from(upto - self.front_start).unwrap_or(usize::MAX);
            if let Some(part) = front.get(from..to) {
                self.newlines += part.iter().filter(|&&b| b == b'\n').count() as u64;
                self.last = part.last().copied().or(self.last);
            }
            self.counted_to = upto;
            if upto == chunk_end {
                self.front_start = chunk_end;
                self.chunks.pop_front();
            }
        }
        let terminator = u64::from(self.last == Some(b'\n'));
        (1 + self.newlines)
            .saturating_sub(terminator)
            .saturating_sub(newlines_inside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record's line, read as the shards read.
    fn lines(data: &'static str, chunk: usize) -> Vec<u64> {
        let mut counter = Lines::default();
        for part in data.as_bytes().chunks(chunk) {
            counter.feed(Bytes::from_static(part));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(data.as_bytes());
        let mut record = csv::ByteRecord::new();
        let mut lines = Vec::new();
        while reader.read_byte_record(&mut record).unwrap() {
            let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
            lines.push(counter.record_line(reader.position().byte(), inside));
        }
        lines
    }

    #[test]
    fn lines_are_counted_on_lf_crlf_blank_lines_and_quoted_newlines() {
        let cases: [(&str, &[u64]); 6] = [
            ("a,b\n1,2\n3,4\n", &[1, 2, 3]),
            ("a,b\r\n1,2\r\n\r\n3,4\r\n5,6\r\n", &[1, 2, 4, 5]),
            ("a,b\n1,2\n\n3,4\n5,6\n", &[1, 2, 4, 5]),
            ("a,b\r\n1,\"x\r\ny\"\r\n3,4\r\n", &[1, 2, 4]),
            ("a,b\n1,\"x\ny\"\n3,4", &[1, 2, 4]),
            ("a,b\r\n1,2\n3,4\r\n", &[1, 2, 3]),
        ];
        for (data, expected) in cases {
            for chunk in [1, 3, 1000] {
                assert_eq!(
                    lines(data, chunk),
                    expected,
                    "{data:?} in chunks of {chunk}"
                );
            }
        }
    }
}
