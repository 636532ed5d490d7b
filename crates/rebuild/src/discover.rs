//! Finding `app/version/Dockerfile` in a tree (the layout users keep their
//! Dockerfiles in: `mysql/5.7.18/Dockerfile`).

use std::path::{Path, PathBuf};

/// Every `(app, version, directory)` under `root` holding a `Dockerfile`,
/// in name order. Hidden directories are skipped.
pub(crate) fn tree(root: &Path) -> Result<Vec<(String, String, PathBuf)>, String> {
    let mut out = Vec::new();
    for app in dirs(root).map_err(|e| format!("{}: {e}", root.display()))? {
        let app_dir = root.join(&app);
        for version in dirs(&app_dir).map_err(|e| format!("{}: {e}", app_dir.display()))? {
            let dir = app_dir.join(&version);
            if dir.join("Dockerfile").is_file() {
                out.push((app.clone(), version, dir));
            }
        }
    }
    Ok(out)
}

fn dirs(p: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(p)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}
