//! rpm databases: SQLite (`rpmdb.sqlite`, rpm >= 4.16), Berkeley DB hash
//! (`Packages`, older rpm) and NDB (`Packages.db`, SUSE). Each stores one
//! rpm header blob per package; the format is told by the file's magic
//! bytes, not its name.
//!
//! The `rpmdb` crate was evaluated and not used: on hostile input it can
//! panic (unchecked slicing and i32 arithmetic in its header parser), loop
//! forever (a BDB overflow page of the wrong type is retried without
//! advancing), allocate a declared 4 GiB NDB blob before reading it, takes
//! an exclusive `flock`, and needs the database as a file on disk. The
//! readers below work on the bytes in memory, check every offset, and bound
//! every loop; SQLite is opened from memory (`sqlite3_deserialize`), so
//! nothing is written to disk.

use std::collections::HashSet;

use super::package;
use crate::model::{DbKind, Ecosystem, Package};

const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
const NDB_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const BDB_HASH_MAGIC: u32 = 0x0006_1561;

/// Reads an rpm database of any of the three formats.
pub(crate) fn parse(
    data: &[u8],
    location: &str,
    warnings: &mut Vec<String>,
) -> Result<(DbKind, Vec<Package>), String> {
    let (kind, blobs) = if data.starts_with(SQLITE_MAGIC) {
        (DbKind::RpmSqlite, sqlite_blobs(data)?)
    } else if data.len() >= 4
        && u32::from_le_bytes([data[0], data[1], data[2], data[3]]) == NDB_MAGIC
    {
        (DbKind::RpmNdb, ndb_blobs(data, location, warnings)?)
    } else if data.len() >= 16
        && (read_u32(data, 12, false) == Some(BDB_HASH_MAGIC)
            || read_u32(data, 12, true) == Some(BDB_HASH_MAGIC))
    {
        (DbKind::RpmBdb, bdb_blobs(data, location, warnings)?)
    } else {
        return Err("not an SQLite, Berkeley DB hash or NDB rpm database".into());
    };
    let mut out = Vec::with_capacity(blobs.len());
    for (i, blob) in blobs.iter().enumerate() {
        match header_package(blob, location) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => {}
            Err(e) => warnings.push(format!("{location}: header {i}: {e}; skipped")),
        }
    }
    Ok((kind, out))
}

fn read_u32(data: &[u8], at: usize, big: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

fn read_u16(data: &[u8], at: usize, big: bool) -> Option<u16> {
    let b: [u8; 2] = data.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if big {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

// --- rpm header blobs ------------------------------------------------------

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;
/// rpm's own limits (`hdrchkTags`, `hdrchkData`).
const MAX_TAGS: u32 = 0xffff;
const MAX_DATA: u32 = 0x0fff_ffff;

/// Reads NAME, EPOCH, VERSION, RELEASE, ARCH, SOURCERPM from an
/// "immutable region" header blob (no lead, no magic: as rpmdb stores it).
/// `Ok(None)` for the `gpg-pubkey` pseudo-packages rpm keeps for imported
/// keys.
fn header_package(blob: &[u8], location: &str) -> Result<Option<Package>, String> {
    let il = read_u32(blob, 0, true).ok_or("header shorter than 8 bytes")?;
    let dl = read_u32(blob, 4, true).ok_or("header shorter than 8 bytes")?;
    if il == 0 || il > MAX_TAGS || dl > MAX_DATA {
        return Err(format!("header counts out of range (il {il}, dl {dl})"));
    }
    let index_end = 8 + 16 * il as usize;
    let data_end = index_end + dl as usize;
    let store = blob
        .get(index_end..data_end)
        .ok_or("header shorter than its counts say")?;
    let mut name = None;
    let mut version = None;
    let mut release = None;
    let mut epoch: Option<u32> = None;
    let mut arch = None;
    let mut source_rpm = None;
    for i in 0..il as usize {
        let e = 8 + 16 * i;
        let tag = read_u32(blob, e, true).unwrap_or(0);
        let ty = read_u32(blob, e + 4, true).unwrap_or(0);
        let offset = read_u32(blob, e + 8, true).unwrap_or(u32::MAX) as usize;
        let slot = match tag {
            TAG_NAME => &mut name,
            TAG_VERSION => &mut version,
            TAG_RELEASE => &mut release,
            TAG_ARCH => &mut arch,
            TAG_SOURCERPM => &mut source_rpm,
            TAG_EPOCH => {
                if ty == TYPE_INT32 && epoch.is_none() {
                    epoch = read_u32(store, offset, true);
                }
                continue;
            }
            _ => continue,
        };
        if slot.is_some() || !(ty == TYPE_STRING || ty == TYPE_I18NSTRING) {
            continue;
        }
        let s = store.get(offset..).ok_or("tag offset outside the data")?;
        let end = s
            .iter()
            .position(|&b| b == 0)
            .ok_or("unterminated string")?;
        *slot = Some(String::from_utf8_lossy(&s[..end]).into_owned());
    }
    let name = name.ok_or("no NAME tag")?;
    if name == "gpg-pubkey" {
        return Ok(None);
    }
    let version = version.ok_or("no VERSION tag")?;
    let release = release.ok_or("no RELEASE tag")?;
    let evr = match epoch {
        Some(e) => format!("{e}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let mut p = package(Ecosystem::Rpm, name, evr, location);
    p.arch = arch.filter(|a| !a.is_empty() && a != "(none)");
    if let Some((n, v)) = source_rpm.as_deref().and_then(split_source_rpm) {
        p.source_name = Some(n);
        p.source_version = Some(v);
    }
    Ok(Some(p))
}

/// `bash-5.1.8-6.el9.src.rpm` -> (`bash`, `5.1.8-6.el9`).
pub(crate) fn split_source_rpm(s: &str) -> Option<(String, String)> {
    let base = s
        .strip_suffix(".src.rpm")
        .or_else(|| s.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = base.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    Some((name.to_string(), format!("{version}-{release}")))
}

// --- SQLite ---------------------------------------------------------------

/// SQLite virtual-machine steps allowed for the whole read (a hostile
/// schema could otherwise make the query run forever).
const SQLITE_PROGRESS_LIMIT: u32 = 50_000;

fn sqlite_blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use rusqlite::{Connection, MAIN_DB, OpenFlags, config::DbConfig, limits::Limit};
    let err = |e: rusqlite::Error| format!("sqlite: {e}");
    let mut image = data.to_vec();
    // A WAL-mode file (read/write versions 2) cannot be opened from memory;
    // the main file alone is what rpm checkpointed, so read it as legacy.
    if image.len() > 19 && image[18] == 2 && image[19] == 2 {
        image[18] = 1;
        image[19] = 1;
    }
    let mut conn = Connection::open_with_flags(
        ":memory:",
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(err)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
        .map_err(err)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
        .map_err(err)?;
    // Sorting and temporary tables stay in memory: nothing goes to disk.
    conn.execute_batch("PRAGMA temp_store = MEMORY")
        .map_err(err)?;
    let mut steps = 0u32;
    conn.progress_handler(
        1000,
        Some(move || {
            steps += 1;
            steps > SQLITE_PROGRESS_LIMIT
        }),
    )
    .map_err(err)?;
    let len = image.len();
    conn.deserialize_read_exact(MAIN_DB, &image[..], len, true)
        .map_err(err)?;
    let kind: String = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| format!("sqlite: no Packages table ({e})"))?;
    if kind != "table" {
        return Err(format!("sqlite: Packages is a {kind}, not a table"));
    }
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages ORDER BY hnum")
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(err)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r.map_err(err)?);
    }
    Ok(out)
}

// --- NDB ------------------------------------------------------------------

const NDB_SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const NDB_BLOB_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const NDB_PAGE: usize = 4096;
const NDB_HEADER: usize = 32;
const NDB_SLOT: usize = 16;
const NDB_BLK: usize = 16;

/// rpm's `backend/ndb/rpmpkg.c` layout: a 32-byte header (`RpmP`, version
/// 0, generation, slot pages), slots of 16 bytes (`Slot`, package index,
/// block offset, block count) filling the slot pages, and blobs at
/// `block offset * 16` (`BlbS`, package index, generation, length, data).
fn ndb_blobs(
    data: &[u8],
    location: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<Vec<u8>>, String> {
    let version = read_u32(data, 4, false).ok_or("NDB header truncated")?;
    let slot_pages = read_u32(data, 12, false).ok_or("NDB header truncated")? as usize;
    if version != 0 {
        return Err(format!("NDB version {version} is not supported"));
    }
    if slot_pages == 0 || slot_pages > 2048 {
        return Err(format!("NDB slot page count {slot_pages} out of range"));
    }
    let slots_end = (slot_pages * NDB_PAGE).min(data.len());
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut at = NDB_HEADER;
    while at + NDB_SLOT <= slots_end {
        let magic = read_u32(data, at, false).unwrap_or(0);
        let pkg = read_u32(data, at + 4, false).unwrap_or(0);
        let blk = read_u32(data, at + 8, false).unwrap_or(0) as usize;
        at += NDB_SLOT;
        if magic != NDB_SLOT_MAGIC {
            warnings.push(format!("{location}: NDB slot with a bad magic ignored"));
            continue;
        }
        if pkg == 0 || !seen.insert(pkg) {
            continue;
        }
        let off = blk
            .checked_mul(NDB_BLK)
            .ok_or("NDB block offset overflows")?;
        let bmagic = read_u32(data, off, false);
        let bpkg = read_u32(data, off + 4, false);
        let len = read_u32(data, off + 12, false).map(|l| l as usize);
        match (bmagic, bpkg, len) {
            (Some(NDB_BLOB_MAGIC), Some(p), Some(len)) if p == pkg => {
                let start = off + 16;
                match data.get(start..start.saturating_add(len)) {
                    Some(b) => out.push(b.to_vec()),
                    None => warnings.push(format!(
                        "{location}: NDB blob of package {pkg} runs past the end of the file; skipped"
                    )),
                }
            }
            _ => warnings.push(format!(
                "{location}: NDB blob of package {pkg} not found at its slot's offset; skipped"
            )),
        }
    }
    Ok(out)
}

// --- Berkeley DB hash -----------------------------------------------------

const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
const PAGE_HEADER: usize = 26;

/// libdb's hash access method as rpm used it: page 0 is the hash metadata
/// (magic 0x061561 at 12, page size at 20, last page at 32), hash pages
/// (type 13, or 2 before rpm 4.6) hold key/data pairs through an index of
/// u16 offsets after the 26-byte page header; a data item is either inline
/// (`H_KEYDATA`) or a chain of overflow pages (`H_OFFPAGE`: page number and
/// total length). The byte order is the writer's: told by the magic.
fn bdb_blobs(
    data: &[u8],
    location: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<Vec<u8>>, String> {
    let big = read_u32(data, 12, false) != Some(BDB_HASH_MAGIC);
    let page_size = read_u32(data, 20, big).ok_or("BDB metadata truncated")? as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("BDB page size {page_size} is not valid"));
    }
    if data.get(25) != Some(&8) {
        return Err("BDB metadata page is not a hash metadata page".into());
    }
    let last_page = read_u32(data, 32, big).ok_or("BDB metadata truncated")? as usize;
    let pages = data.len() / page_size;
    if last_page >= pages {
        warnings.push(format!(
            "{location}: BDB file is shorter than its metadata says (last page {last_page}, {pages} pages)"
        ));
    }
    let page = |n: usize| data.get(n * page_size..(n + 1) * page_size);
    let mut out = Vec::new();
    for n in 1..pages.min(last_page + 1) {
        let Some(p) = page(n) else { break };
        if p[25] != P_HASH && p[25] != P_HASH_UNSORTED {
            continue;
        }
        let entries = read_u16(p, 20, big).unwrap_or(0) as usize;
        let index = |i: usize| read_u16(p, PAGE_HEADER + 2 * i, big).map(usize::from);
        // Pairs: even index is the key, odd the data.
        for i in (1..entries).step_by(2) {
            let (Some(off), Some(prev)) = (index(i), index(i - 1)) else {
                break;
            };
            // An item ends where the one before it starts.
            let Some(item) = p.get(off..prev.max(off)) else {
                warnings.push(format!("{location}: BDB page {n}: item {i} out of bounds"));
                continue;
            };
            match item.first() {
                Some(&H_KEYDATA) => {
                    let v = &item[1..];
                    if v.len() > 8 {
                        out.push(v.to_vec());
                    }
                }
                Some(&H_OFFPAGE) => {
                    let pgno = read_u32(item, 4, big).unwrap_or(0) as usize;
                    let tlen = read_u32(item, 8, big).unwrap_or(0) as usize;
                    match overflow(&page, pgno, tlen, pages, big) {
                        Ok(v) => out.push(v),
                        Err(e) => warnings.push(format!("{location}: BDB page {n}: {e}")),
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn overflow<'a>(
    page: &impl Fn(usize) -> Option<&'a [u8]>,
    mut pgno: usize,
    tlen: usize,
    pages: usize,
    big: bool,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(tlen.min(16 * 1024 * 1024));
    let mut hops = 0;
    while pgno != 0 && out.len() < tlen {
        hops += 1;
        if hops > pages {
            return Err("overflow chain loops".into());
        }
        let p = page(pgno).ok_or("overflow page outside the file")?;
        if p[25] != P_OVERFLOW {
            return Err(format!(
                "page {pgno} in an overflow chain is not an overflow page"
            ));
        }
        let len = read_u16(p, 22, big).unwrap_or(0) as usize;
        let chunk = p
            .get(PAGE_HEADER..PAGE_HEADER + len)
            .ok_or("overflow page length out of bounds")?;
        out.extend_from_slice(chunk);
        pgno = read_u32(p, 16, big).unwrap_or(0) as usize;
    }
    if out.len() != tlen {
        return Err(format!(
            "overflow item is {} bytes, expected {tlen}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn source_rpm_names() {
        assert_eq!(
            super::split_source_rpm("bash-5.1.8-6.el9.src.rpm"),
            Some(("bash".into(), "5.1.8-6.el9".into()))
        );
        assert_eq!(
            super::split_source_rpm("python3-libs-3.9.18-1.el9.src.rpm"),
            Some(("python3-libs".into(), "3.9.18-1.el9".into()))
        );
        assert_eq!(super::split_source_rpm("(none)"), None);
    }

    #[test]
    fn hostile_headers_do_not_panic() {
        let loc = "/var/lib/rpm/x";
        for blob in [
            &b""[..],
            &[0, 0, 0, 1, 0, 0, 0, 0][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[
                0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 3, 232, 0, 0, 0, 6, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0,
                1, b'a', b'b', 0, 0,
            ][..],
        ] {
            let _ = super::header_package(blob, loc);
        }
        let mut w = Vec::new();
        for db in [&b"RpmP\0\0\0\0\0\0\0\0\x01\0\0\0"[..], &[0u8; 600][..]] {
            let _ = super::parse(db, loc, &mut w);
        }
    }
}
