//! Reading one layer: decompression by magic bytes, limits, the tar walk,
//! whiteouts, and dispatch of files of interest to the extractors.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use crate::extract;
use crate::model::{Deletion, FileFinding, LayerFindings, Link};
use crate::tar_stream::{Kind, TarError, TarReader};
use crate::{Limits, SbomError};

/// Counters shared by the reader stack.
#[derive(Default)]
struct Counters {
    compressed: Cell<u64>,
    decompressed: Cell<u64>,
}

/// Marks an error from the caller's stream.
#[derive(Debug)]
struct InputError(io::Error);
impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for InputError {}

/// Marks an error from the decompressor.
#[derive(Debug)]
struct DecodeError(io::Error);
impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for DecodeError {}

/// Marks a limit being passed.
#[derive(Debug)]
enum LimitError {
    Bytes,
    Ratio { decompressed: u64, compressed: u64 },
}
impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("limit passed")
    }
}
impl std::error::Error for LimitError {}

fn inner_is<T: std::error::Error + 'static>(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<T>())
}

/// Counts what the caller's stream gives.
struct CountIn<R> {
    inner: R,
    counters: Rc<Counters>,
}

impl<R: Read> Read for CountIn<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|e| io::Error::other(InputError(e)))?;
        self.counters
            .compressed
            .set(self.counters.compressed.get() + n as u64);
        Ok(n)
    }
}

/// Tags the decompressor's own errors.
struct Decoded<R> {
    inner: R,
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if inner_is::<InputError>(&e) {
                e
            } else {
                io::Error::other(DecodeError(e))
            }
        })
    }
}

/// Counts decompressed bytes and enforces the byte and ratio limits, before
/// the bytes go any further.
struct Limited<R> {
    inner: R,
    counters: Rc<Counters>,
    max_bytes: u64,
    max_ratio: Option<u64>,
}

/// Below this many decompressed bytes the ratio is not checked: headers and
/// small layers of zeros compress very well without being bombs.
const RATIO_FLOOR: u64 = 16 * 1024 * 1024;

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.counters.decompressed.get() + n as u64;
        self.counters.decompressed.set(total);
        if total > self.max_bytes {
            return Err(io::Error::other(LimitError::Bytes));
        }
        if let Some(ratio) = self.max_ratio {
            let compressed = self.counters.compressed.get().max(1);
            if total > RATIO_FLOOR && total / compressed > ratio {
                return Err(io::Error::other(LimitError::Ratio {
                    decompressed: total,
                    compressed,
                }));
            }
        }
        Ok(n)
    }
}

/// What the first bytes say.
fn sniff(head: &[u8]) -> Result<Option<&'static str>, &'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Some("gzip"))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Some("zstd"))
    } else if head.starts_with(b"BZh") {
        Err("bzip2")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err("xz")
    } else {
        Ok(None)
    }
}

/// What a path is interesting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    OsRelease,
    DpkgStatus,
    DpkgStatusD,
    Apk,
    Rpm,
    Python,
    Npm,
}

impl Interest {
    /// The most of such a file read into memory.
    fn cap(self, limits: &Limits) -> u64 {
        let own = match self {
            Interest::OsRelease => 64 * 1024,
            Interest::Python | Interest::Npm => 8 * 1024 * 1024,
            _ => u64::MAX,
        };
        own.min(limits.max_file_bytes)
    }
}

/// Which extractor, if any, wants the file at `path` (normalized).
pub(crate) fn classify(path: &str) -> Option<Interest> {
    let (dir, base) = match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    };
    match path {
        "etc/os-release" | "usr/lib/os-release" => return Some(Interest::OsRelease),
        "var/lib/dpkg/status" => return Some(Interest::DpkgStatus),
        "lib/apk/db/installed" => return Some(Interest::Apk),
        _ => {}
    }
    if dir == "var/lib/dpkg/status.d" && !base.ends_with(".md5sums") && !base.starts_with('.') {
        return Some(Interest::DpkgStatusD);
    }
    if matches!(
        dir,
        "var/lib/rpm" | "usr/lib/sysimage/rpm" | "usr/share/rpm"
    ) && matches!(base, "rpmdb.sqlite" | "Packages" | "Packages.db")
    {
        return Some(Interest::Rpm);
    }
    if (base == "METADATA" && dir.ends_with(".dist-info"))
        || (base == "PKG-INFO" && dir.ends_with(".egg-info"))
        || (base.ends_with(".egg-info") && base.len() > ".egg-info".len())
    {
        return Some(Interest::Python);
    }
    if base == "package.json" {
        let mut parts = dir.rsplit('/');
        let pkg = parts.next().unwrap_or("");
        let parent = parts.next();
        let grand = parts.next();
        if !pkg.is_empty() && !pkg.starts_with('@') {
            if parent == Some("node_modules") {
                return Some(Interest::Npm);
            }
            if parent.is_some_and(|p| p.starts_with('@') && p.len() > 1)
                && grand == Some("node_modules")
            {
                return Some(Interest::Npm);
            }
        }
    }
    None
}

/// Normalizes a tar path: no leading `/` or `./`, no `.` or empty
/// components. `Err` for a `..` component; `Ok(None)` for the root.
pub(crate) fn normalize(raw: &str) -> Result<Option<String>, ()> {
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(()),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        Ok(None)
    } else {
        Ok(Some(parts.join("/")))
    }
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

pub(crate) fn scan(
    layer: &str,
    compressed: impl Read,
    limits: &Limits,
) -> Result<LayerFindings, SbomError> {
    let counters = Rc::new(Counters::default());
    let mut input = CountIn {
        inner: compressed,
        counters: counters.clone(),
    };
    // Peek at the magic bytes without losing them.
    let mut head = Vec::with_capacity(8);
    (&mut input)
        .take(8)
        .read_to_end(&mut head)
        .map_err(|e| map_io(layer, limits, None, e, 0, "tar"))?;
    let format = sniff(&head).map_err(|format| SbomError::UnsupportedCompression {
        layer: layer.to_string(),
        format,
    })?;
    let stream = io::Cursor::new(head).chain(input);
    let decoded: Box<dyn Read> = match format {
        Some("gzip") => Box::new(Decoded {
            inner: flate2::read::MultiGzDecoder::new(stream),
        }),
        Some(_) => {
            let dec =
                zstd::stream::read::Decoder::new(stream).map_err(|e| SbomError::Decompress {
                    layer: layer.to_string(),
                    format: "zstd",
                    source: e,
                })?;
            Box::new(Decoded { inner: dec })
        }
        None => Box::new(stream),
    };
    let format_name = format.unwrap_or("tar");
    let limited = Limited {
        inner: decoded,
        counters: counters.clone(),
        max_bytes: limits.max_layer_bytes,
        max_ratio: limits.max_compression_ratio,
    };
    let mut tar = TarReader::new(limited);
    let mut out = LayerFindings::default();
    let ctx = Ctx {
        layer,
        limits,
        format: format_name,
    };

    let result = walk(&mut tar, &mut out, &ctx);
    let offset = tar.offset();
    match result {
        Ok(()) => {}
        Err(WalkError::Entries) => {
            return Err(SbomError::TooManyEntries {
                layer: layer.to_string(),
                limit: limits.max_entries,
            });
        }
        Err(WalkError::Tar(e)) => return Err(ctx.map_tar(e, offset)),
    }
    if !tar.ended_cleanly {
        out.warnings
            .push("tar stream ends without its end-of-archive blocks".to_string());
    }
    // Read what follows the archive (padding): it counts against the limits,
    // and the gzip/zstd trailer check happens only at the very end.
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| ctx.map_io(None, e, offset))?;
    out.bytes = counters.decompressed.get();
    Ok(out)
}

struct Ctx<'a> {
    layer: &'a str,
    limits: &'a Limits,
    format: &'static str,
}

impl Ctx<'_> {
    fn map_tar(&self, e: TarError, offset: u64) -> SbomError {
        match e {
            TarError::Io(e) => self.map_io(None, e, offset),
            TarError::Format {
                offset,
                path,
                reason,
            } => SbomError::Tar {
                layer: self.layer.to_string(),
                offset,
                path,
                reason,
            },
        }
    }

    fn map_io(&self, path: Option<String>, e: io::Error, offset: u64) -> SbomError {
        map_io(self.layer, self.limits, path, e, offset, self.format)
    }
}

fn map_io(
    layer: &str,
    limits: &Limits,
    path: Option<String>,
    e: io::Error,
    offset: u64,
    format: &'static str,
) -> SbomError {
    let layer = layer.to_string();
    let Some(inner) = e.get_ref() else {
        return SbomError::Tar {
            layer,
            offset,
            path,
            reason: e.to_string(),
        };
    };
    if let Some(l) = inner.downcast_ref::<LimitError>() {
        return match *l {
            LimitError::Bytes => SbomError::LayerTooLarge {
                layer,
                limit: limits.max_layer_bytes,
            },
            LimitError::Ratio {
                decompressed,
                compressed,
            } => SbomError::CompressionRatio {
                layer,
                limit: limits.max_compression_ratio.unwrap_or(0),
                decompressed,
                compressed,
            },
        };
    }
    if inner.is::<InputError>() {
        let e = e.into_inner().and_then(|b| b.downcast::<InputError>().ok());
        return SbomError::Read {
            layer,
            source: e.map_or_else(|| io::Error::other("read failed"), |b| b.0),
        };
    }
    if inner.is::<DecodeError>() {
        let e = e
            .into_inner()
            .and_then(|b| b.downcast::<DecodeError>().ok());
        return SbomError::Decompress {
            layer,
            format,
            source: e.map_or_else(|| io::Error::other("decode failed"), |b| b.0),
        };
    }
    SbomError::Tar {
        layer,
        offset,
        path,
        reason: e.to_string(),
    }
}

enum WalkError {
    Tar(TarError),
    Entries,
}

impl From<TarError> for WalkError {
    fn from(e: TarError) -> Self {
        WalkError::Tar(e)
    }
}

fn walk<R: Read>(
    tar: &mut TarReader<R>,
    out: &mut LayerFindings,
    ctx: &Ctx<'_>,
) -> Result<(), WalkError> {
    while let Some(entry) = tar.next_entry()? {
        out.entries += 1;
        if out.entries > ctx.limits.max_entries {
            return Err(WalkError::Entries);
        }
        let raw = String::from_utf8_lossy(&entry.path).into_owned();
        let path = match normalize(&raw) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(()) => {
                out.warnings.push(format!(
                    "{raw}: path with '..' skipped (would escape the root)"
                ));
                continue;
            }
        };
        let (dir, base) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        if let Some(name) = base.strip_prefix(".wh.") {
            if name == ".wh..opq" {
                out.deletions.push(Deletion {
                    path: dir.to_string(),
                    opaque: true,
                });
            } else if name.starts_with(".wh.") {
                // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not a deletion.
            } else if name.is_empty() {
                out.warnings
                    .push(format!("{path}: empty whiteout name ignored"));
            } else {
                let target = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                out.deletions.push(Deletion {
                    path: target,
                    opaque: false,
                });
            }
            continue;
        }
        let interest = classify(&path);
        match entry.kind {
            Kind::HardLink | Kind::Symlink => {
                if interest.is_none() {
                    continue;
                }
                let target = String::from_utf8_lossy(&entry.link).into_owned();
                let hard = entry.kind == Kind::HardLink;
                if hard && normalize(&target).is_err() {
                    out.warnings
                        .push(format!("{path}: hard link to {target} with '..' ignored"));
                    continue;
                }
                out.files.remove(&path);
                out.links.insert(path, Link { target, hard });
            }
            Kind::Regular => {
                if entry.pax_sparse {
                    if interest.is_some() {
                        skip(out, path, "sparse file not read".into());
                    }
                    continue;
                }
                match interest {
                    Some(interest) => read_interesting(tar, out, ctx, path, interest, entry.size)?,
                    None => read_binary(tar, out, ctx, path, entry.size)?,
                }
            }
            Kind::Sparse => {
                if interest.is_some() {
                    skip(out, path, "sparse file not read".into());
                }
            }
            Kind::Directory | Kind::Special | Kind::Other => {}
        }
    }
    Ok(())
}

fn skip(out: &mut LayerFindings, path: String, reason: String) {
    out.warnings.push(format!("/{path}: {reason}"));
    out.links.remove(&path);
    out.files.insert(path, FileFinding::Skipped { reason });
}

fn read_interesting<R: Read>(
    tar: &mut TarReader<R>,
    out: &mut LayerFindings,
    ctx: &Ctx<'_>,
    path: String,
    interest: Interest,
    size: u64,
) -> Result<(), TarError> {
    let cap = interest.cap(ctx.limits);
    if size > cap {
        skip(
            out,
            path,
            format!(
                "{size} bytes pass the limit of {cap} bytes for a file read into memory; not read"
            ),
        );
        return Ok(());
    }
    let mut data = Vec::with_capacity(size as usize);
    tar.read_rest(&mut data)?;
    let location = format!("/{path}");
    let finding = extract::extract(interest, &location, &data, &mut out.warnings);
    out.links.remove(&path);
    out.files.insert(path, finding);
    Ok(())
}

fn read_binary<R: Read>(
    tar: &mut TarReader<R>,
    out: &mut LayerFindings,
    ctx: &Ctx<'_>,
    path: String,
    size: u64,
) -> Result<(), TarError> {
    if size < 64 {
        return Ok(());
    }
    let mut magic = [0u8; 4];
    tar.read_data_exact(&mut magic)?;
    if &magic != ELF_MAGIC {
        return Ok(());
    }
    if size > ctx.limits.max_file_bytes {
        out.warnings.push(format!(
            "/{path}: ELF file of {size} bytes passes the limit of {} bytes for a file read into memory; not read",
            ctx.limits.max_file_bytes
        ));
        return Ok(());
    }
    let mut data = Vec::with_capacity(size as usize);
    data.extend_from_slice(&magic);
    tar.read_rest(&mut data)?;
    debug_assert_eq!(tar.remaining(), 0);
    let location = format!("/{path}");
    if let Some(finding) = extract::binary(&location, &data, &mut out.warnings) {
        out.links.remove(&path);
        out.files.insert(path, finding);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(
            normalize("./etc/os-release").unwrap().as_deref(),
            Some("etc/os-release")
        );
        assert_eq!(normalize("/etc//x/").unwrap().as_deref(), Some("etc/x"));
        assert_eq!(normalize("./").unwrap(), None);
        assert!(normalize("../../etc/passwd").is_err());
        assert!(normalize("a/../b").is_err());
    }

    #[test]
    fn classify_paths() {
        assert_eq!(classify("var/lib/dpkg/status"), Some(Interest::DpkgStatus));
        assert_eq!(
            classify("var/lib/dpkg/status.d/base"),
            Some(Interest::DpkgStatusD)
        );
        assert_eq!(classify("var/lib/dpkg/status.d/base.md5sums"), None);
        assert_eq!(
            classify("usr/lib/sysimage/rpm/rpmdb.sqlite"),
            Some(Interest::Rpm)
        );
        assert_eq!(
            classify("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"),
            Some(Interest::Python)
        );
        assert_eq!(
            classify("usr/lib/python3/dist-packages/foo.egg-info"),
            Some(Interest::Python)
        );
        assert_eq!(
            classify("app/node_modules/@types/node/package.json"),
            Some(Interest::Npm)
        );
        assert_eq!(
            classify("app/node_modules/left-pad/package.json"),
            Some(Interest::Npm)
        );
        assert_eq!(classify("app/node_modules/left-pad/lib/package.json"), None);
        assert_eq!(classify("app/package.json"), None);
    }
}
