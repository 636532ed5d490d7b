//! The external tools the parts run, found on PATH or named with the
//! command that installs them.

use std::path::PathBuf;

/// Finds `tool` on PATH, or panics naming the command that installs it.
pub fn require_tool(tool: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(tool);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return candidate;
            }
        }
    }
    panic!(
        "freshen-testkit: `{tool}` is not installed (not found on PATH); install it with `{install}`"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(
        expected = "`freshen-no-such-tool` is not installed (not found on PATH); install it with `apt-get install freshen-x`"
    )]
    fn missing_tool_panics_with_the_install_command() {
        require_tool("freshen-no-such-tool", "apt-get install freshen-x");
    }

    #[test]
    fn finds_installed_tools() {
        assert!(require_tool("sh", "apt-get install dash").is_absolute());
    }
}
