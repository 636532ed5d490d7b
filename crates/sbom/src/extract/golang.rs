//! Go binaries: the build info the linker embeds (`.go.buildinfo`).
//!
//! Since Go 1.18 the header (`\xff Go buildinf:`, pointer size, flags) is
//! followed inline (flag bit 2) by two varint-length-prefixed strings: the
//! Go version and the module info. The module info is framed by 16-byte
//! sentinels and holds tab-separated lines: `path`, `mod` (main module),
//! `dep`, `=>` (replacement of the line above), `build`.

use super::package;
use crate::model::{Ecosystem, Package};

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER: usize = 32;
const ALIGN: usize = 16;

/// Finds the build info header in `data` (a `.go.buildinfo` section, or a
/// whole file without section headers): 16-byte aligned, as Go writes it.
pub(crate) fn find_in(data: &[u8]) -> Option<&[u8]> {
    (0..data.len())
        .step_by(ALIGN)
        .find(|&i| data[i..].starts_with(MAGIC) && data.len() - i >= HEADER)
        .map(|i| &data[i..])
}

/// Reads the packages from a build info blob that starts with the magic.
pub(crate) fn parse(buf: &[u8], location: &str) -> Result<Vec<Package>, String> {
    if buf.len() < HEADER {
        return Err("build info header is truncated".into());
    }
    let flags = buf[15];
    if flags & 0x2 == 0 {
        return Err(
            "build info is in the pointer format of Go before 1.18, which is not read".into(),
        );
    }
    let mut rest = &buf[HEADER..];
    let version = read_string(&mut rest).ok_or("bad Go version string")?;
    let modinfo = read_string(&mut rest).ok_or("bad module info string")?;
    let version = String::from_utf8_lossy(version);
    let mut modinfo: &[u8] = modinfo;
    if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        modinfo = &modinfo[16..modinfo.len() - 16];
    }
    let modinfo = String::from_utf8_lossy(modinfo);

    let mut out: Vec<Package> = Vec::new();
    // Index in `out` of the module the next `=>` line replaces.
    let mut last: Option<usize> = None;
    for line in modinfo.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["mod" | "dep", path, version, ..] => {
                out.push(package(Ecosystem::Go, *path, *version, location));
                last = Some(out.len() - 1);
            }
            ["mod" | "dep", path] => {
                out.push(package(Ecosystem::Go, *path, "(devel)", location));
                last = Some(out.len() - 1);
            }
            ["=>", path, rest @ ..] => {
                let Some(i) = last.take() else { continue };
                let rversion = rest.first().copied().unwrap_or("");
                // A replacement by another module path is what is linked;
                // a replacement by a local directory keeps the original
                // module's identity (its path and required version).
                let local = path.starts_with('.') || path.starts_with('/');
                if !local {
                    out[i].name = (*path).to_string();
                    if !rversion.is_empty() {
                        out[i].version = rversion.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    let go = version.split_whitespace().next().unwrap_or("");
    if go.starts_with("go") {
        out.push(package(Ecosystem::Go, "stdlib", go, location));
    }
    Ok(out)
}

/// A uvarint-length-prefixed string.
fn read_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut i = 0;
    loop {
        let b = *rest.get(i)?;
        i += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let len = usize::try_from(len).ok()?;
    let s = rest.get(i..i.checked_add(len)?)?;
    *rest = &rest[i + len..];
    Some(s)
}
