//! The git side of a write-back: clone, commit, push, and start over on the
//! new tip when the branch moved. Everything goes through the `git` CLI,
//! as Argo CD Image Updater does, with no user or system configuration.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::redact::Redactor;
use crate::{FileChange, FileEdit, GitopsError, ImageUpdate, RepoSpec, WriteBack, edit, image};

/// git's own variables that are inherited all the same: how to reach ssh.
const KEPT_GIT_VARS: [&str; 3] = ["GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT"];

/// Settings given on every command line, so no configuration file counts.
const SETTINGS: [&str; 8] = [
    "core.autocrlf=false",
    "core.hooksPath=/dev/null",
    "advice.detachedHead=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "commit.gpgsign=false",
    "init.defaultBranch=main",
    "user.useConfigOnly=false",
];

/// The commit message when the caller gives none.
const DEFAULT_MESSAGE: &str = "freshen: pin new image digests";

struct Git<'a> {
    spec: &'a RepoSpec,
    redactor: Redactor,
    /// The repository as shown: credentials removed.
    repo: String,
    /// `HOME` for git: an empty directory in the scratch space.
    home: PathBuf,
}

/// A finished git command.
struct Outcome {
    ok: bool,
    stdout: String,
    /// stderr and stdout, redacted, for an error or a log line.
    detail: String,
}

/// What git said, on one line: its non-empty lines, hints left out.
fn summary(stderr: &str, stdout: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:") && *l != "Done")
        .collect();
    let mut s = lines.join("; ");
    if s.len() > 2000 {
        let mut cut = s.len() - 2000;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s = format!("…{}", &s[cut..]);
    }
    s
}

impl Git<'_> {
    fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("GIT_") && !KEPT_GIT_VARS.contains(&k.as_ref()) {
                c.env_remove(k.as_ref());
            }
        }
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            c.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        c.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .env("LANGUAGE", "")
            .env("GIT_AUTHOR_NAME", &self.spec.author_name)
            .env("GIT_AUTHOR_EMAIL", &self.spec.author_email)
            .env("GIT_COMMITTER_NAME", &self.spec.author_name)
            .env("GIT_COMMITTER_EMAIL", &self.spec.author_email);
        // An empty value first resets the helper list.
        c.arg("-c").arg("credential.helper=");
        if let Some(h) = &self.spec.credential_helper {
            c.arg("-c").arg(format!("credential.helper={h}"));
        }
        for s in SETTINGS {
            c.arg("-c").arg(s);
        }
        c.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn outcome(
        &self,
        step: &'static str,
        cwd: &Path,
        args: &[&str],
    ) -> Result<Outcome, GitopsError> {
        tracing::debug!(step, repo = %self.repo, "git");
        let failed = |detail: String| GitopsError::Git {
            step,
            repo: self.repo.clone(),
            detail,
        };
        let out =
            match tokio::time::timeout(self.spec.timeout, self.command(cwd, args).output()).await {
                Err(_) => {
                    return Err(failed(format!(
                        "no answer within {}s",
                        self.spec.timeout.as_secs()
                    )));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(GitopsError::GitMissing(e));
                }
                Ok(Err(e)) => return Err(failed(self.redactor.text(&e.to_string()))),
                Ok(Ok(out)) => out,
            };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut detail = self
            .redactor
            .text(&summary(&String::from_utf8_lossy(&out.stderr), &stdout));
        if detail.is_empty() {
            detail = out.status.to_string();
        }
        Ok(Outcome {
            ok: out.status.success(),
            stdout,
            detail,
        })
    }

    async fn run(
        &self,
        step: &'static str,
        cwd: &Path,
        args: &[&str],
    ) -> Result<String, GitopsError> {
        let o = self.outcome(step, cwd, args).await?;
        if o.ok {
            Ok(o.stdout)
        } else {
            Err(GitopsError::Git {
                step,
                repo: self.repo.clone(),
                detail: o.detail,
            })
        }
    }

    /// Whether the remote has the branch.
    async fn has_branch(&self, cwd: &Path, branch: &str) -> Result<bool, GitopsError> {
        let want = format!("refs/heads/{branch}");
        let out = self
            .run(
                "ls-remote",
                cwd,
                &["ls-remote", "--", &self.spec.url, &want],
            )
            .await?;
        Ok(out
            .lines()
            .any(|l| l.split('\t').nth(1) == Some(want.as_str())))
    }

    /// What the credential helper answers for the URL, so that it can be
    /// masked wherever git or the server shows it.
    async fn helper_credential(&self, cwd: &Path) -> (Option<String>, Option<String>) {
        use tokio::io::AsyncWriteExt as _;
        let mut cmd = self.command(cwd, &["credential", "fill"]);
        cmd.stdin(Stdio::piped());
        let Ok(mut child) = cmd.spawn() else {
            return (None, None);
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin
                .write_all(format!("url={}\n\n", self.spec.url).as_bytes())
                .await;
        }
        let out = match tokio::time::timeout(self.spec.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => out,
            _ => return (None, None),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::to_string)
        };
        (field("username="), field("password="))
    }

    async fn valid_branch(&self, cwd: &Path, branch: &str) -> Result<bool, GitopsError> {
        Ok(self
            .outcome(
                "check-ref-format",
                cwd,
                &["check-ref-format", "--branch", branch],
            )
            .await?
            .ok)
    }
}

/// Whether a push was refused because the branch is no longer where the
/// clone found it (rather than for rights, hooks or the network).
fn branch_moved(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "non-fast-forward",
        "fetch first",
        "stale info",
        "incorrect old value",
    ]
    .iter()
    .any(|s| d.contains(s))
        || (d.contains("cannot lock ref") && d.contains("but expected"))
}

/// `{event}` as a branch name can hold it.
fn branch_safe(event: &str) -> String {
    let mut s: String = event
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("..") {
        s = s.replace("..", ".");
    }
    while s.contains("//") {
        s = s.replace("//", "/");
    }
    s.trim_matches(['-', '.', '/']).to_string()
}

/// The push branch from its template.
fn render_branch(template: &str, event: &str) -> Result<String, String> {
    let ev = branch_safe(event);
    if template.contains("{event}") && ev.is_empty() {
        return Err(format!(
            "push_branch {template:?} names {{event}}, but the event {event:?} leaves nothing a branch name can hold"
        ));
    }
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let name = template.replace("{event}", &ev).replace("{date}", &date);
    if name.contains(['{', '}']) {
        return Err(format!(
            "push_branch {template:?}: unknown placeholder; use {{event}} and {{date}}"
        ));
    }
    Ok(name)
}

/// The commit message: the caller's, and a trailer per image pinned.
fn commit_message(message: &str, updates: &[ImageUpdate], changes: &[FileChange]) -> String {
    let pinned: BTreeSet<String> = changes
        .iter()
        .filter_map(|c| {
            updates
                .iter()
                .find(|u| u.image.name() == c.image && c.new.ends_with(&u.digest))
        })
        .map(ImageUpdate::pinned)
        .collect();
    let message = message.trim();
    let message = if message.is_empty() {
        DEFAULT_MESSAGE
    } else {
        message
    };
    let trailers: Vec<String> = pinned
        .iter()
        .map(|p| format!("Freshen-Image: {p}"))
        .collect();
    format!("{message}\n\n{}\n", trailers.join("\n"))
}

fn check_spec(spec: &RepoSpec) -> Result<(), String> {
    if spec.url.trim().is_empty() {
        return Err("the repository URL is empty".into());
    }
    if spec.attempts == 0 {
        return Err("attempts must be at least 1".into());
    }
    if spec.author_name.trim().is_empty() || spec.author_email.trim().is_empty() {
        return Err("the commit needs an author name and email".into());
    }
    if spec.timeout.is_zero() {
        return Err("the git timeout must be more than 0".into());
    }
    for (policy, image) in &spec.markers {
        if policy.split(':').count() != 2 {
            return Err(format!(
                "markers: {policy:?} is not <namespace>:<policy>, as in {{\"$imagepolicy\": \"flux-system:app\"}}"
            ));
        }
        if image::repository(image).is_none() {
            return Err(format!(
                "markers: {policy:?} maps to {image:?}, which is not an image reference"
            ));
        }
    }
    Ok(())
}

/// See [`crate::write_back`].
pub(crate) async fn write_back(
    spec: &RepoSpec,
    updates: &[ImageUpdate],
    event: &str,
    message: &str,
    scratch: &Path,
) -> Result<WriteBack, GitopsError> {
    let redactor = Redactor::new(&spec.url, spec.credential_helper.as_deref());
    let repo = redactor.text(&spec.url);
    let spec_error = |reason: String| GitopsError::Spec {
        repo: repo.clone(),
        reason,
    };
    check_spec(spec).map_err(spec_error)?;
    edit::validate_updates(updates)?;
    let target = match &spec.push_branch {
        None => spec.branch.clone(),
        Some(template) => render_branch(template, event).map_err(spec_error)?,
    };

    let scratch_error = |source| GitopsError::Scratch {
        path: scratch.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(scratch).map_err(scratch_error)?;
    let work = tempfile::Builder::new()
        .prefix("freshen-gitops-")
        .tempdir_in(scratch)
        .map_err(scratch_error)?;
    let home = work.path().join("home");
    std::fs::create_dir(&home).map_err(scratch_error)?;
    let mut git = Git {
        spec,
        redactor,
        repo: repo.clone(),
        home,
    };
    if spec.credential_helper.is_some() {
        let (user, password) = git.helper_credential(work.path()).await;
        git.redactor.learn(user.as_deref(), password.as_deref());
    }
    let mut names = vec![&spec.branch];
    if target != spec.branch {
        names.push(&target);
    }
    for b in names {
        if !git.valid_branch(work.path(), b).await? {
            return Err(spec_error(format!("{b:?} is not a valid branch name")));
        }
    }
    if updates.is_empty() {
        return Ok(WriteBack {
            commit: None,
            branch: target,
            files: Vec::new(),
            attempts: 0,
        });
    }

    // A review branch that exists already gets the edits on top.
    let base = if target != spec.branch && git.has_branch(work.path(), &target).await? {
        target.clone()
    } else {
        spec.branch.clone()
    };
    let checkout = work.path().join("repo");
    let checkout_arg = checkout.to_string_lossy().into_owned();
    git.run(
        "clone",
        work.path(),
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--single-branch",
            "--no-tags",
            "--branch",
            &base,
            "--",
            &spec.url,
            &checkout_arg,
        ],
    )
    .await?;
    tracing::info!(repo = %repo, branch = %base, target = %target, "gitops: cloned");

    // Edits are written only where `inside` says: in the checkout, through
    // no symbolic link.
    let root = edit::canonical_root(&checkout)?;
    let message_file = work.path().join("message");
    let message_arg = message_file.to_string_lossy().into_owned();
    let refspec = format!("HEAD:refs/heads/{target}");
    let mut tried = 0;
    loop {
        let edits = plan(&checkout, spec, updates).await?;
        if edits.is_empty() {
            tracing::info!(repo = %repo, branch = %target, "gitops: nothing to change");
            return Ok(WriteBack {
                commit: None,
                branch: target,
                files: Vec::new(),
                attempts: tried,
            });
        }
        let mut files = Vec::new();
        let mut changes = Vec::new();
        for e in &edits {
            let rel = e.path.to_string_lossy().into_owned();
            // Planned from files found through no link, but the write
            // follows whatever is there now: look again.
            let target = edit::inside(&root, &e.path, &rel)?;
            tokio::fs::write(target, &e.text)
                .await
                .map_err(|source| GitopsError::Io {
                    file: rel.clone(),
                    source,
                })?;
            files.push(rel);
            changes.extend(e.changes.iter().cloned());
        }
        let mut add = vec!["add", "--"];
        add.extend(files.iter().map(String::as_str));
        git.run("add", &checkout, &add).await?;
        std::fs::write(&message_file, commit_message(message, updates, &changes))
            .map_err(scratch_error)?;
        git.run(
            "commit",
            &checkout,
            &[
                "commit",
                "--quiet",
                "--no-verify",
                "--no-gpg-sign",
                "--cleanup=verbatim",
                "-F",
                &message_arg,
            ],
        )
        .await?;
        let commit = git
            .run("rev-parse", &checkout, &["rev-parse", "HEAD"])
            .await?
            .trim()
            .to_string();
        tried += 1;
        let push = git
            .outcome(
                "push",
                &checkout,
                &["push", "--porcelain", "origin", &refspec],
            )
            .await?;
        if push.ok {
            tracing::info!(repo = %repo, branch = %target, commit = %commit, fields = changes.len(), attempt = tried, "gitops: pushed");
            return Ok(WriteBack {
                commit: Some(commit),
                branch: target,
                files: changes,
                attempts: tried,
            });
        }
        if !branch_moved(&push.detail) {
            return Err(GitopsError::Git {
                step: "push",
                repo,
                detail: push.detail,
            });
        }
        if tried >= spec.attempts {
            return Err(GitopsError::Moved {
                repo,
                branch: target,
                attempts: tried,
                detail: push.detail,
            });
        }
        tracing::warn!(repo = %repo, branch = %target, attempt = tried, detail = %push.detail, "gitops: push refused, the branch moved; editing its new tip");
        let fetch_ref = format!("refs/heads/{target}");
        git.run(
            "fetch",
            &checkout,
            &[
                "fetch",
                "--quiet",
                "--depth",
                "1",
                "--no-tags",
                "origin",
                &fetch_ref,
            ],
        )
        .await?;
        git.run(
            "reset",
            &checkout,
            &["reset", "--quiet", "--hard", "FETCH_HEAD"],
        )
        .await?;
    }
}

/// [`edit::plan`] off the async threads (it reads every file).
async fn plan(
    checkout: &Path,
    spec: &RepoSpec,
    updates: &[ImageUpdate],
) -> Result<Vec<FileEdit>, GitopsError> {
    let (root, paths, markers, updates) = (
        checkout.to_path_buf(),
        spec.paths.clone(),
        spec.markers.clone(),
        updates.to_vec(),
    );
    tokio::task::spawn_blocking(move || edit::plan(&root, &paths, &markers, &updates))
        .await
        .map_err(|e| GitopsError::Internal {
            file: "(planning the edits)".into(),
            reason: e.to_string(),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_branches_are_told_from_other_refusals() {
        assert!(branch_moved(
            "! HEAD:refs/heads/main [rejected] (fetch first)"
        ));
        assert!(branch_moved("[rejected] (non-fast-forward)"));
        assert!(branch_moved(
            "remote: error: cannot lock ref 'refs/heads/main': is at 1 but expected 2; [remote rejected] (failed to update ref)"
        ));
        assert!(!branch_moved(
            "[remote rejected] (pre-receive hook declined)"
        ));
        assert!(!branch_moved("fatal: Authentication failed"));
    }

    #[test]
    fn push_branch_templates() {
        let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
        assert_eq!(
            render_branch("freshen/{event}", "CVE-2024-1234 (openssl)").unwrap(),
            "freshen/CVE-2024-1234--openssl"
        );
        assert_eq!(
            render_branch("freshen/{date}", "x").unwrap(),
            format!("freshen/{date}")
        );
        assert_eq!(render_branch("f/{event}", "../..x").unwrap(), "f/x");
        assert!(render_branch("f/{event}", "///").is_err());
        assert!(render_branch("f/{id}", "e").is_err());
    }

    #[test]
    fn message_gets_a_trailer_per_image() {
        let u = ImageUpdate {
            image: freshen_reference::Reference::parse("nginx").unwrap(),
            tag: Some("1.27".into()),
            digest: format!("sha256:{}", "a".repeat(64)),
            old_digests: Vec::new(),
        };
        let change = FileChange {
            path: "a.yaml".into(),
            line: 1,
            field: "image".into(),
            image: "docker.io/library/nginx".into(),
            old: "nginx:1.27".into(),
            new: format!("nginx:1.27@{}", u.digest),
        };
        let m = commit_message(
            "Rebuild for CVE-1\n",
            std::slice::from_ref(&u),
            &[change.clone(), change],
        );
        assert_eq!(
            m,
            format!(
                "Rebuild for CVE-1\n\nFreshen-Image: docker.io/library/nginx:1.27@{}\n",
                u.digest
            )
        );
    }
}
