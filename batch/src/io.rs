//! The bridge between the scoring loop, which runs on a blocking thread,
//! and the object store's asynchronous streams.

use std::io::Read;

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
}

impl BlockingRead {
    /// Reads `stream` with the runtime of `handle`.
    pub fn new(handle: Handle, stream: ByteStream) -> Self {
        Self {
            handle,
            stream,
            chunk: Bytes::new(),
        }
    }
}

impl Read for BlockingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        self.chunk.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}
