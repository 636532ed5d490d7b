//! Errors that stop a layer's scan. Each names the layer; those tied to an
//! entry also name its path.

use std::io;

/// Why a layer could not be scanned. A malformed package database is not an
/// error (it becomes a warning in [`crate::LayerFindings`]); these are
/// problems with the layer itself or with the limits.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The decompressed layer is larger than [`crate::Limits::max_layer_bytes`].
    #[error("layer {layer}: decompressed size passes the limit of {limit} bytes")]
    LayerTooLarge {
        /// The layer digest.
        layer: String,
        /// The limit.
        limit: u64,
    },
    /// The layer has more entries than [`crate::Limits::max_entries`].
    #[error("layer {layer}: number of tar entries passes the limit of {limit}")]
    TooManyEntries {
        /// The layer digest.
        layer: String,
        /// The limit.
        limit: u64,
    },
    /// Decompressed bytes outgrew the compressed bytes read by more than
    /// [`crate::Limits::max_compression_ratio`].
    #[error(
        "layer {layer}: compression ratio passes the limit of {limit}:1 ({decompressed} bytes from {compressed})"
    )]
    CompressionRatio {
        /// The layer digest.
        layer: String,
        /// The limit.
        limit: u64,
        /// Decompressed bytes so far.
        decompressed: u64,
        /// Compressed bytes read so far.
        compressed: u64,
    },
    /// The compressed stream is corrupt or truncated.
    #[error("layer {layer}: corrupt or truncated {format} stream: {source}")]
    Decompress {
        /// The layer digest.
        layer: String,
        /// `gzip` or `zstd`.
        format: &'static str,
        /// What the decoder said.
        #[source]
        source: io::Error,
    },
    /// The layer is compressed with something other than gzip or zstd.
    #[error("layer {layer}: unsupported compression {format} (layers are gzip, zstd or plain tar)")]
    UnsupportedCompression {
        /// The layer digest.
        layer: String,
        /// What the magic bytes say.
        format: &'static str,
    },
    /// The tar stream is malformed or truncated.
    #[error("layer {layer}: bad tar stream at byte {offset}{}: {reason}", path_suffix(.path))]
    Tar {
        /// The layer digest.
        layer: String,
        /// The offset in the decompressed stream where the problem was seen.
        offset: u64,
        /// The entry being read, if known.
        path: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Reading the caller's stream failed.
    #[error("layer {layer}: reading the layer failed: {source}")]
    Read {
        /// The layer digest.
        layer: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn path_suffix(path: &Option<String>) -> String {
    match path {
        Some(p) => format!(" (entry {p})"),
        None => String::new(),
    }
}
