//! The files tests build images from: any file with its directories, and
//! the root filesystem of a small Debian-like base image.

use std::path::Path;

/// The Dockerfile of a [`debian_root`] base: its `var` and `etc` copied
/// onto `scratch`.
pub const DEBIAN_ROOT_DOCKERFILE: &str = "FROM scratch\nCOPY var /var\nCOPY etc /etc\n";

/// Writes a file, creating its directory.
pub fn write_file(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().expect("a file in a directory")).expect("create dir");
    std::fs::write(p, text).expect("write file");
}

/// The root of a Debian-like base in `ctx` (what debootstrap would leave
/// for the inventory to read): `var/lib/dpkg/status` with `dpkg_status`
/// and `etc/os-release` with `os_release`. Build it with
/// [`DEBIAN_ROOT_DOCKERFILE`]; more files may be added to `ctx` first.
pub fn debian_root(ctx: &Path, dpkg_status: &str, os_release: &str) {
    std::fs::create_dir_all(ctx.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(ctx.join("etc")).unwrap();
    std::fs::write(ctx.join("var/lib/dpkg/status"), dpkg_status).unwrap();
    std::fs::write(ctx.join("etc/os-release"), os_release).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_root_writes_status_and_os_release() {
        let d = tempfile::tempdir().unwrap();
        debian_root(d.path(), "Package: a\n", "ID=debian\n");
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).unwrap();
        assert_eq!(read("var/lib/dpkg/status"), "Package: a\n");
        assert_eq!(read("etc/os-release"), "ID=debian\n");
        write_file(&d.path().join("a/b/c.txt"), "c");
        assert_eq!(read("a/b/c.txt"), "c");
    }
}
