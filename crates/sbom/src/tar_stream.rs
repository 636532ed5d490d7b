//! A small streaming tar reader.
//!
//! Written here rather than taken from the `tar` crate because a layer is
//! hostile input: `tar` reads GNU long-name and PAX extension entries of any
//! declared size into memory (bounded only by the layer), and its raw mode,
//! which would let us cap them, drops the PAX `size` override. This reader
//! caps metadata entries at [`META_MAX`], treats header-only entry types
//! (links, directories, devices) as carrying no data like Go's `archive/tar`
//! (which wrote most layers), verifies header checksums, and never seeks.

use std::io::{self, Read};

/// The largest GNU long-name / long-link / PAX entry accepted.
pub(crate) const META_MAX: u64 = 1024 * 1024;

const BLOCK: usize = 512;

/// A problem with the tar stream itself (as opposed to an I/O error below).
#[derive(Debug)]
pub(crate) enum TarError {
    /// The reader below failed (or said "limit").
    Io(io::Error),
    /// The stream is malformed here.
    Format {
        offset: u64,
        path: Option<String>,
        reason: String,
    },
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        TarError::Io(e)
    }
}

/// What kind of entry a header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    HardLink,
    Symlink,
    Directory,
    /// Character or block device, FIFO: no data.
    Special,
    /// GNU sparse file: data is not the file's bytes.
    Sparse,
    /// Anything else: data skipped.
    Other,
}

/// One logical entry, its metadata entries already applied.
#[derive(Debug)]
pub(crate) struct Entry {
    pub kind: Kind,
    /// The raw path bytes (PAX `path` > GNU long name > ustar prefix/name).
    pub path: Vec<u8>,
    /// The raw link target bytes.
    pub link: Vec<u8>,
    /// Data bytes that follow (0 for header-only kinds).
    pub size: u64,
    /// PAX said this is a sparse file (GNU.sparse.*).
    pub pax_sparse: bool,
}

pub(crate) struct TarReader<R> {
    inner: R,
    offset: u64,
    /// Data bytes of the current entry not yet consumed.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// Set once the end-of-archive block was seen.
    pub ended_cleanly: bool,
    /// Reused for skipping and copying data.
    scratch: Vec<u8>,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            ended_cleanly: false,
            scratch: vec![0u8; 64 * 1024],
        }
    }

    /// The offset in the stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Gives the inner reader back (to drain what follows the archive).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn format(&self, path: Option<&[u8]>, reason: impl Into<String>) -> TarError {
        TarError::Format {
            offset: self.offset,
            path: path.map(|p| String::from_utf8_lossy(p).into_owned()),
            reason: reason.into(),
        }
    }

    /// Reads a whole block; `Ok(false)` at a clean end of stream.
    fn read_block(&mut self, buf: &mut [u8; BLOCK]) -> Result<bool, TarError> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.offset += got as u64;
        match got {
            0 => Ok(false),
            BLOCK => Ok(true),
            _ => Err(self.format(None, "stream ends inside a header block (truncated)")),
        }
    }

    /// Reads up to `buf.len()` bytes of the current entry's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Err(self.format(None, "stream ends inside an entry's data (truncated)"));
        }
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }

    /// Reads exactly `buf.len()` bytes of data.
    pub fn read_data_exact(&mut self, mut buf: &mut [u8]) -> Result<(), TarError> {
        while !buf.is_empty() {
            let n = self.read_data(buf)?;
            if n == 0 {
                return Err(self.format(None, "entry shorter than expected"));
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads the rest of the current entry's data into `out`.
    pub fn read_rest(&mut self, out: &mut Vec<u8>) -> Result<(), TarError> {
        let mut chunk = std::mem::take(&mut self.scratch);
        let result = (|| {
            while self.remaining > 0 {
                let n = self.read_data(&mut chunk)?;
                out.extend_from_slice(&chunk[..n]);
            }
            Ok(())
        })();
        self.scratch = chunk;
        result
    }

    /// Data bytes of the current entry not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Skips the rest of the current entry's data and its padding.
    fn finish_entry(&mut self) -> Result<(), TarError> {
        let mut sink = std::mem::take(&mut self.scratch);
        let result = self.skip_rest(&mut sink);
        self.scratch = sink;
        result
    }

    fn skip_rest(&mut self, sink: &mut [u8]) -> Result<(), TarError> {
        while self.remaining > 0 {
            self.read_data(sink)?;
        }
        while self.padding > 0 {
            let want = usize::try_from(self.padding.min(sink.len() as u64)).unwrap_or(0);
            let n = loop {
                match self.inner.read(&mut sink[..want]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            };
            if n == 0 {
                return Err(self.format(None, "stream ends inside an entry's padding (truncated)"));
            }
            self.padding -= n as u64;
            self.offset += n as u64;
        }
        Ok(())
    }

    fn start_data(&mut self, size: u64) {
        self.remaining = size;
        self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    }

    /// Reads a metadata entry's data (capped at [`META_MAX`]).
    fn read_meta(&mut self, size: u64, what: &str) -> Result<Vec<u8>, TarError> {
        if size > META_MAX {
            return Err(self.format(
                None,
                format!("{what} entry of {size} bytes passes the limit of {META_MAX} bytes"),
            ));
        }
        self.start_data(size);
        let mut out = Vec::with_capacity(size as usize);
        self.read_rest(&mut out)?;
        self.finish_entry()?;
        Ok(out)
    }

    /// Moves to the next logical entry, skipping what is left of the
    /// current one. `None` at the end of the archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        self.finish_entry()?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Pax> = None;
        let mut block = [0u8; BLOCK];
        loop {
            if !self.read_block(&mut block)? {
                // EOF without the end-of-archive blocks: lenient, like most
                // readers; the caller notes it.
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(self.format(None, "metadata entry describes a missing entry"));
                }
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                self.ended_cleanly = true;
                return Ok(None);
            }
            self.check_checksum(&block)?;
            let size = self.parse_size(&block)?;
            let typeflag = block[156];
            match typeflag {
                b'L' => {
                    let mut v = self.read_meta(size, "GNU long name")?;
                    trim_nul(&mut v);
                    long_name = Some(v);
                    continue;
                }
                b'K' => {
                    let mut v = self.read_meta(size, "GNU long link")?;
                    trim_nul(&mut v);
                    long_link = Some(v);
                    continue;
                }
                b'x' | b'X' => {
                    let data = self.read_meta(size, "PAX header")?;
                    pax = Some(Pax::parse(&data).map_err(|r| self.format(None, r))?);
                    continue;
                }
                b'g' => {
                    // Global PAX headers carry nothing this crate uses.
                    self.read_meta(size, "PAX global header")?;
                    continue;
                }
                _ => {}
            }
            let ustar = &block[257..263] == b"ustar\0";
            let mut path = field(&block[0..100]).to_vec();
            if ustar {
                let prefix = field(&block[345..500]);
                if !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&path);
                    path = p;
                }
            }
            let mut link = field(&block[157..257]).to_vec();
            let mut size = size;
            let mut pax_sparse = false;
            if let Some(name) = long_name.take() {
                path = name;
            }
            if let Some(l) = long_link.take() {
                link = l;
            }
            if let Some(p) = pax.take() {
                pax_sparse = p.sparse;
                if let Some(v) = p.sparse_name.or(p.path) {
                    path = v;
                }
                if let Some(v) = p.linkpath {
                    link = v;
                }
                if let Some(v) = p.size {
                    size = v;
                }
            }
            let kind = match typeflag {
                b'0' | 0 | b'7' => Kind::Regular,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'5' => Kind::Directory,
                b'3' | b'4' | b'6' => Kind::Special,
                b'S' => Kind::Sparse,
                _ => Kind::Other,
            };
            if kind == Kind::Sparse && block[482] != 0 {
                // Old GNU sparse: extension blocks of sparse maps follow.
                let mut ext = [0u8; BLOCK];
                loop {
                    if !self.read_block(&mut ext)? {
                        return Err(self.format(Some(&path), "truncated GNU sparse header"));
                    }
                    if ext[504] == 0 {
                        break;
                    }
                }
            }
            let data = match kind {
                Kind::HardLink | Kind::Symlink | Kind::Directory | Kind::Special => 0,
                _ => size,
            };
            self.start_data(data);
            return Ok(Some(Entry {
                kind,
                path,
                link,
                size: data,
                pax_sparse,
            }));
        }
    }

    fn check_checksum(&self, block: &[u8; BLOCK]) -> Result<(), TarError> {
        let stored = parse_octal(&block[148..156]).ok_or_else(|| {
            self.format(None, "header checksum is not a number (not a tar stream?)")
        })?;
        let mut unsigned: u64 = 0;
        let mut signed: i64 = 0;
        for (i, &b) in block.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err(self.format(
                Some(field(&block[0..100])),
                "header checksum mismatch (corrupt or not a tar stream)",
            ));
        }
        Ok(())
    }

    fn parse_size(&self, block: &[u8; BLOCK]) -> Result<u64, TarError> {
        let f = &block[124..136];
        if f[0] & 0x80 != 0 {
            if f[0] == 0xff {
                return Err(self.format(Some(field(&block[0..100])), "negative entry size"));
            }
            let mut v: u64 = u64::from(f[0] & 0x7f);
            for &b in &f[1..] {
                v = v
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(u64::from(b)))
                    .ok_or_else(|| {
                        self.format(Some(field(&block[0..100])), "entry size overflows")
                    })?;
            }
            return Ok(v);
        }
        parse_octal(f)
            .ok_or_else(|| self.format(Some(field(&block[0..100])), "entry size is not a number"))
    }
}

/// A NUL-terminated header field.
fn field(f: &[u8]) -> &[u8] {
    match f.iter().position(|&b| b == 0) {
        Some(i) => &f[..i],
        None => f,
    }
}

fn trim_nul(v: &mut Vec<u8>) {
    while v.last() == Some(&0) {
        v.pop();
    }
}

fn parse_octal(f: &[u8]) -> Option<u64> {
    let s: &[u8] = {
        let f = field(f);
        let start = f.iter().position(|&b| b != b' ').unwrap_or(f.len());
        let end = f.iter().rposition(|&b| b != b' ').map_or(start, |i| i + 1);
        &f[start..end.max(start)]
    };
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for &b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// The PAX records this crate uses.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    sparse: bool,
    sparse_name: Option<Vec<u8>>,
}

impl Pax {
    fn parse(mut data: &[u8]) -> Result<Pax, String> {
        let mut pax = Pax::default();
        while !data.is_empty() {
            if data.iter().all(|&b| b == 0) {
                break;
            }
            let sp = data
                .iter()
                .position(|&b| b == b' ')
                .ok_or("PAX record without a length")?;
            let len: usize = std::str::from_utf8(&data[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("PAX record length is not a number")?;
            if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err("PAX record length is wrong".into());
            }
            let rec = &data[sp + 1..len - 1];
            let eq = rec
                .iter()
                .position(|&b| b == b'=')
                .ok_or("PAX record without '='")?;
            let (key, value) = (&rec[..eq], &rec[eq + 1..]);
            match key {
                b"path" => pax.path = Some(value.to_vec()),
                b"linkpath" => pax.linkpath = Some(value.to_vec()),
                b"size" => {
                    pax.size = Some(
                        std::str::from_utf8(value)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or("PAX size is not a number")?,
                    )
                }
                b"GNU.sparse.name" => {
                    pax.sparse = true;
                    pax.sparse_name = Some(value.to_vec());
                }
                k if k.starts_with(b"GNU.sparse.") => pax.sparse = true,
                _ => {}
            }
            data = &data[len..];
        }
        Ok(pax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_fields() {
        assert_eq!(parse_octal(b"0000644\0"), Some(0o644));
        assert_eq!(parse_octal(b"  12 \0"), Some(0o12));
        assert_eq!(parse_octal(b"\0\0\0"), Some(0));
        assert_eq!(parse_octal(b"9"), None);
    }

    #[test]
    fn pax_records() {
        let p = Pax::parse(b"30 path=a/very/long/name/here\n12 size=123\n").unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"a/very/long/name/here"[..]));
        assert_eq!(p.size, Some(123));
        assert!(Pax::parse(b"99 path=x\n").is_err());
    }
}
