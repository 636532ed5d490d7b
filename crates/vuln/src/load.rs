//! Reading OSV records from a file, a directory of files, or a zip archive
//! in the layout of OSV's bulk exports (`<ecosystem>/all.zip`: one JSON
//! record per member).

use std::io::Read;
use std::path::Path;

use crate::VulnError;
use crate::osv::Record;

/// The largest single record accepted (the biggest real ones are a few hundred KiB).
const MAX_RECORD_BYTES: u64 = 16 << 20;
/// The most members read from one archive (Debian's export has ~50k).
const MAX_ARCHIVE_MEMBERS: usize = 2_000_000;
/// The most record bytes one load reads (after decompression), so an
/// archive that inflates without end fails instead of filling memory.
/// OSV's largest export (all ecosystems) is a few GiB; one ecosystem's
/// is far less.
pub const MAX_LOAD_BYTES: u64 = 4 << 30;

/// Records read from one path.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records, in the order found.
    pub records: Vec<Record>,
    /// Files (or archive members) read.
    pub files: usize,
    /// Record bytes read (after decompression).
    pub bytes: u64,
    /// The most `bytes` may grow to.
    limit: u64,
}

/// Reads every OSV record under `path`: a `.json` file, a `.zip` archive, or
/// a directory searched recursively for both. A file that is not an OSV
/// record fails the load with its name. At most [`MAX_LOAD_BYTES`].
pub fn load_path(path: &Path) -> Result<Loaded, VulnError> {
    load_path_within(path, MAX_LOAD_BYTES)
}

/// [`load_path`] reading at most `max_bytes` of records (after
/// decompression); more fails the load with [`VulnError::Limit`].
pub fn load_path_within(path: &Path, max_bytes: u64) -> Result<Loaded, VulnError> {
    let mut out = Loaded {
        limit: max_bytes,
        ..Loaded::default()
    };
    load_into(path, &mut out)?;
    Ok(out)
}

impl Loaded {
    /// Counts `n` more bytes read from `name`, failing past the limit.
    fn take(&mut self, n: u64, name: &str) -> Result<(), VulnError> {
        self.bytes += n;
        if self.bytes > self.limit {
            return Err(VulnError::Limit {
                path: name.to_string(),
                detail: format!(
                    "more than {} bytes of records in one load (decompressed)",
                    self.limit
                ),
            });
        }
        Ok(())
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VulnError + '_ {
    move |source| VulnError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn load_into(path: &Path, out: &mut Loaded) -> Result<(), VulnError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(io_err(path))?
            .collect::<Result<_, _>>()
            .map_err(io_err(path))?;
        // A stable order, so repeated imports report the same way.
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let ty = e.file_type().map_err(io_err(&p))?;
            let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
            if ty.is_dir() || ext.eq_ignore_ascii_case("json") || ext.eq_ignore_ascii_case("zip") {
                load_into(&p, out)?;
            }
        }
        return Ok(());
    }
    if meta.len() > MAX_RECORD_BYTES && !is_zip(path)? {
        return Err(VulnError::Limit {
            path: path.display().to_string(),
            detail: format!("{} bytes is larger than a record may be", meta.len()),
        });
    }
    if is_zip(path)? {
        return load_zip(path, out);
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    out.take(bytes.len() as u64, &path.display().to_string())?;
    out.records
        .push(parse(&bytes, &path.display().to_string())?);
    out.files += 1;
    Ok(())
}

fn is_zip(path: &Path) -> Result<bool, VulnError> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let n = f.read(&mut magic).map_err(io_err(path))?;
    Ok(n == 4 && magic == *b"PK\x03\x04")
}

fn load_zip(path: &Path, out: &mut Loaded) -> Result<(), VulnError> {
    let shown = path.display().to_string();
    let zip_err = |e: zip::result::ZipError| VulnError::Zip {
        path: shown.clone(),
        detail: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
    if archive.len() > MAX_ARCHIVE_MEMBERS {
        return Err(VulnError::Limit {
            path: shown,
            detail: format!(
                "{} members is more than {MAX_ARCHIVE_MEMBERS}",
                archive.len()
            ),
        });
    }
    let mut buf = Vec::new();
    for i in 0..archive.len() {
        let member = archive.by_index(i).map_err(zip_err)?;
        let member_name = member.name().map_err(zip_err)?.into_owned();
        if !member.is_file() || !member_name.ends_with(".json") {
            continue;
        }
        let name = format!("{shown}!{member_name}");
        buf.clear();
        // The declared size can lie: read at most one byte past the limit.
        member
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|source| VulnError::Io {
                path: name.clone(),
                source,
            })?;
        if buf.len() as u64 > MAX_RECORD_BYTES {
            return Err(VulnError::Limit {
                path: name,
                detail: format!("a member larger than {MAX_RECORD_BYTES} bytes"),
            });
        }
        out.take(buf.len() as u64, &name)?;
        out.records.push(parse(&buf, &name)?);
        out.files += 1;
    }
    Ok(())
}

fn parse(bytes: &[u8], name: &str) -> Result<Record, VulnError> {
    Record::parse(bytes).map_err(|detail| {
        let detail = match crate::report::detect(bytes) {
            Some(f @ (crate::Format::Trivy | crate::Format::Grype | crate::Format::Harbor)) => format!(
                "a {} report: import a report by naming its file, not inside a directory or archive of OSV records",
                f.as_str()
            ),
            _ => detail,
        };
        VulnError::Record {
            path: name.to_string(),
            detail,
        }
    })
}
