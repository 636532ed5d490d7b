//! The image tree the rebuild tests build on: an upstream OS, `golden/base`
//! on it, and apps on the base, in a test's scratch directory.

use std::path::Path;

use crate::buildah::Buildah;
use crate::files::write_file;

/// golden/base in `<d>/images/base`: `FROM <host>/upstream/os:stable`,
/// adding `base.txt`.
pub fn golden_base(d: &Path, host: &str) {
    write_file(
        &d.join("images/base/Dockerfile"),
        &format!("FROM {host}/upstream/os:stable\nCOPY base.txt /base.txt\n"),
    );
    write_file(&d.join("images/base/base.txt"), "base\n");
}

/// The upstream OS, built by buildah and pushed as `upstream/os:v1` and
/// `:v2` (`etc/upstream` says which); returns their digests.
pub async fn upstream_v1_v2(buildah: &Buildah, d: &Path, host: &str) -> Vec<String> {
    let mut digests = Vec::new();
    for v in ["1", "2"] {
        let ctx = d.join(format!("upstream-{v}"));
        write_file(&ctx.join("etc/upstream"), &format!("upstream {v}\n"));
        digests.push(
            buildah
                .build_push(
                    &ctx,
                    "FROM scratch\nCOPY etc /etc\n",
                    &format!("{host}/upstream/os:v{v}"),
                    &[],
                )
                .await,
        );
    }
    digests
}
