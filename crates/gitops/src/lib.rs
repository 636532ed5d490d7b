//! Writes new image digests back to a GitOps repository, the way Argo CD
//! Image Updater's git write-back and Flux's image automation do: clone,
//! edit the YAML in place, commit, push, and start over on the new tip when
//! the branch moved in between.
//!
//! Three kinds of fields are edited, in the `.yaml`/`.yml` files (and
//! `Kustomization` files) under [`RepoSpec::paths`]:
//!
//! 1. **Kustomization `images:` entries** whose image (`newName`, else
//!    `name`), normalised like the docker CLI, is the updated repository:
//!    `digest:` is set (added under the entry's last key when missing).
//!    `newName` and `newTag` stay: kustomize renders `name:tag@digest`
//!    when both are present, and the runtime pulls by digest, so the tag
//!    is only a label for readers (and what later updates match on).
//! 2. **Container images** (`containers`, `initContainers`,
//!    `ephemeralContainers` anywhere in a document that has a `kind`: pod
//!    templates, CronJobs, patches): `image:` becomes
//!    `<repository as written>[:tag as written]@sha256:…`.
//! 3. **Marked fields** (Helm values and anything else): a line whose
//!    comment is a Flux setter, `# {"$imagepolicy": "<ns>:<policy>"}` with
//!    an optional `:tag`, `:name` or `:digest` suffix (the policy mapped to
//!    an image by [`RepoSpec::markers`]), or freshen's own
//!    `# {"$freshen": "<image>"}` with the same suffixes. See
//!    [`plan_edits`] for what each suffix does.
//!
//! Only the bytes of an edited value change: comments, quoting, key order
//! and every other line stay as they were, and an unchanged file is not
//! written. A file that is not valid YAML is an error naming it and the
//! line; so is a field that matches but is written in a form this crate
//! cannot edit in place (flow style, multi-line).
//!
//! Which update applies to a field: its repository must be the update's
//! (`nginx` == `docker.io/library/nginx`). Container images and marked
//! fields are images the runtime pulls, so they follow the rules by which
//! the cluster side decides that a container runs an image:
//!
//! - a field that names a tag (pinned to a digest or not) takes only an
//!   update of that tag, so a rebuild of `app:1.4` does not move a
//!   manifest on `app:1.3`;
//! - a field with neither tag nor digest (`app`) is `app:latest`, as the
//!   runtime pulls it: it takes only an update of the tag `latest`;
//! - a field pinned to a digest without a tag (`app@sha256:…`) takes the
//!   update whose [`ImageUpdate::old_digests`] hold that digest (a digest
//!   freshen never saw for the image was chosen by someone: it stays).
//!
//! For a marked field the tag is the one its marker names (or its policy
//! maps to), else the one in its value (or, for a `:digest` marker, the
//! value of the `:tag` marker beside it); the digest is the one in its
//! value. Kustomization `images:` entries are not images the runtime
//! pulls but instructions to retag every image of a repository, so they
//! follow the repository: an entry with a `newTag` takes an update of that
//! tag (or one that names no tag), an entry without one any update of the
//! repository (when the updates agree on the digest).
//!
//! Git runs as the `git` CLI with no system or user configuration
//! (`GIT_CONFIG_NOSYSTEM`, `HOME` in the scratch directory), no prompts
//! (`GIT_TERMINAL_PROMPT=0`, ssh in batch mode) and the C locale. Secrets
//! in the URL (`https://user:token@host/…`) and from the credential helper
//! never reach an error or a log line: both go through the same redaction.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use freshen_reference::Reference;

mod edit;
mod git;
mod image;
mod marker;
mod outline;
mod redact;

pub use redact::redact_url;

/// How many times a push is tried by default when the branch moved.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// How long one git command may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Where to write: the repository, the branch, which files, how to commit.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoSpec {
    /// Any URL git accepts: `file://`, `https://` (credentials in the URL
    /// or from [`RepoSpec::credential_helper`]), `ssh://`, `user@host:path`.
    pub url: String,
    /// The branch to clone and edit.
    pub branch: String,
    /// `None`: push to `branch`. `Some(template)`: push to a branch for
    /// review, e.g. `freshen/{event}`; `{event}` is the event given to
    /// [`write_back`] (characters a branch name can't hold become `-`),
    /// `{date}` today's UTC date (`2025-01-31`). When that branch exists
    /// already the edits go on top of it, else it starts from `branch`.
    pub push_branch: Option<String>,
    /// Files or directories, relative to the repository root, to look in
    /// (`.` for all). A directory is searched for `*.yaml`, `*.yml` and
    /// `Kustomization` files, skipping `.git`, symbolic links and the
    /// `templates/` of Helm charts (Go templates are not YAML); a file
    /// named here is read whatever its name. A path that is or goes
    /// through a symbolic link is an error naming it (the repository's
    /// content decides where a link points, and could point it out of
    /// the checkout), and every file is checked again before it is read
    /// and before it is written.
    pub paths: Vec<String>,
    /// Flux `$imagepolicy` markers: `"<namespace>:<policy>"` -> the image
    /// the policy follows (`"ghcr.io/org/app:1.4"` to match updates of that
    /// tag only, whatever the field holds; `"ghcr.io/org/app"` to go by the
    /// tag and digest in the field, as for a container's `image:`). A line marked with a policy not
    /// listed is Flux's and left alone. Freshen has no ImagePolicy objects
    /// to read, so the mapping is configuration.
    pub markers: BTreeMap<String, String>,
    /// The commit's author and committer name.
    pub author_name: String,
    /// The commit's author and committer email.
    pub author_email: String,
    /// Push attempts when the branch moved between clone and push (at
    /// least 1).
    pub attempts: u32,
    /// git's `credential.helper`, e.g. `store --file /run/secrets/git`.
    /// Git reads no user or system configuration here, so a helper set up
    /// there is not used unless it is named here.
    pub credential_helper: Option<String>,
    /// How long one git command (clone, push, …) may take.
    pub timeout: Duration,
}

impl RepoSpec {
    /// A spec with the defaults: all files (`.`), push to `branch`, three
    /// attempts, author `freshen <freshen@localhost>`.
    pub fn new(url: impl Into<String>, branch: impl Into<String>) -> RepoSpec {
        RepoSpec {
            url: url.into(),
            branch: branch.into(),
            push_branch: None,
            paths: vec![".".into()],
            markers: BTreeMap::new(),
            author_name: "freshen".into(),
            author_email: "freshen@localhost".into(),
            attempts: DEFAULT_ATTEMPTS,
            credential_helper: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for RepoSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoSpec")
            .field("url", &redact_url(&self.url))
            .field("branch", &self.branch)
            .field("push_branch", &self.push_branch)
            .field("paths", &self.paths)
            .field("markers", &self.markers)
            .field("author_name", &self.author_name)
            .field("author_email", &self.author_email)
            .field("attempts", &self.attempts)
            .field(
                "credential_helper",
                &self.credential_helper.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One image moved to a new digest. See the [crate documentation](crate)
/// for which fields it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUpdate {
    /// The repository to match; its tag and digest are ignored.
    pub image: Reference,
    /// The tag that moved (`latest` for an image named without one). A
    /// field naming another tag is left alone, and so is a field naming
    /// neither tag nor digest unless this is `latest`. `None` (an image
    /// known by digest alone): only fields pinned to one of
    /// [`ImageUpdate::old_digests`], and kustomize `images:` entries, take
    /// the update.
    pub tag: Option<String>,
    /// The new digest, `sha256:…`.
    pub digest: String,
    /// Digests the image had before (`sha256:…`): a field pinned to one of
    /// them without a tag (`app@sha256:…`) runs this image and is moved to
    /// the new digest. A field pinned without a tag to any other digest is
    /// left alone.
    pub old_digests: Vec<String>,
}

impl ImageUpdate {
    /// `registry/repository[:tag]@digest`, as the commit trailer names it.
    pub fn pinned(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}@{}", self.image.name(), self.digest),
            None => format!("{}@{}", self.image.name(), self.digest),
        }
    }
}

/// What [`write_back`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBack {
    /// The commit pushed; `None` when nothing needed to change.
    pub commit: Option<String>,
    /// The branch written to (or that would have been).
    pub branch: String,
    /// Every field changed, file by file.
    pub files: Vec<FileChange>,
    /// Pushes tried (0 when there was nothing to push).
    pub attempts: u32,
}

/// One field changed in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The file, relative to the repository root, with `/` separators.
    pub path: String,
    /// The field's line in the edited file (1-based).
    pub line: usize,
    /// Where the field is in its document, e.g.
    /// `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The updated repository, normalised (`docker.io/library/nginx`).
    pub image: String,
    /// The value before (empty when the field was added).
    pub old: String,
    /// The value after.
    pub new: String,
}

/// One file [`plan_edits`] would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// The file, relative to the root given.
    pub path: PathBuf,
    /// Its whole new text.
    pub text: String,
    /// The fields changed in it.
    pub changes: Vec<FileChange>,
}

/// Why a write-back failed. Repositories are shown with credentials
/// removed; git's own messages are redacted the same way.
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    /// The spec can't be used as it is (a bad branch name or template, no
    /// attempts, an invalid marker mapping).
    #[error("gitops spec for {repo}: {reason}")]
    Spec {
        /// The repository, redacted.
        repo: String,
        /// What to fix.
        reason: String,
    },
    /// An update can't be written (its digest or tag is malformed).
    #[error("update for {image}: {reason}")]
    Update {
        /// The update's repository.
        image: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configured path can't be searched.
    #[error("path {path:?}: {reason}")]
    Path {
        /// The path as configured.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file, relative to the repository root.
        file: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file under the configured paths is not valid YAML.
    #[error("{file}: {}not valid YAML: {message}", at_line(.line))]
    Yaml {
        /// The file, relative to the repository root.
        file: String,
        /// The line (1-based) the parser stopped at, when it says.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A field to update is written in a way that can't be edited in
    /// place (flow style, a multi-line value).
    #[error("{file}: line {line}: cannot edit {field}: {reason}")]
    Unsupported {
        /// The file, relative to the repository root.
        file: String,
        /// The line (1-based) of the field, or of its document.
        line: usize,
        /// The field, e.g. `images[0].digest`.
        field: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// A `$freshen` or `$imagepolicy` marker can't be followed.
    #[error("{file}: line {line}: marker: {reason}")]
    Marker {
        /// The file, relative to the repository root.
        file: String,
        /// The marker's line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The `git` program could not be started.
    #[error("cannot run git (is it installed and on PATH?): {0}")]
    GitMissing(#[source] std::io::Error),
    /// A git command failed.
    #[error("git {step} for {repo} failed: {detail}")]
    Git {
        /// What freshen was doing: `clone`, `push`, …
        step: &'static str,
        /// The repository, redacted.
        repo: String,
        /// git's message, redacted.
        detail: String,
    },
    /// Every push was rejected because the branch kept moving.
    #[error(
        "push to {branch} of {repo} rejected {attempts} time(s): the branch moved while freshen edited it (last: {detail})"
    )]
    Moved {
        /// The repository, redacted.
        repo: String,
        /// The branch pushed to.
        branch: String,
        /// Pushes tried.
        attempts: u32,
        /// git's last message, redacted.
        detail: String,
    },
    /// The scratch directory could not be used.
    #[error("scratch directory {path}: {source}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An edit came out different from what was meant; nothing was
    /// written. This is a bug: please report it with the file.
    #[error("{file}: an edit changed more than the fields meant ({reason}); nothing was written")]
    Internal {
        /// The file, relative to the repository root.
        file: String,
        /// What differed.
        reason: String,
    },
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

/// The pure edit, for a dry run and for tests: which files under `paths`
/// (relative to `root`) would change, and how.
///
/// `markers` maps Flux `$imagepolicy` names to images, as
/// [`RepoSpec::markers`]. Marker suffixes: none (the whole image) becomes
/// `<repository as written>[:tag]@sha256:…`; `:digest` becomes
/// `sha256:…`; `:tag` and `:name` are read, never written (an update moves
/// a digest, not a tag or a name), and a `:tag` marker tells the `:digest`
/// marker of the same image in the same mapping which tag it pins. Values
/// the marker can't follow (a whole-image marker on something that is
/// not an image reference) are an error naming the line.
///
/// Results come in path order; a file comes at most once.
pub fn plan_edits(
    root: &Path,
    paths: &[String],
    markers: &BTreeMap<String, String>,
    updates: &[ImageUpdate],
) -> Result<Vec<FileEdit>, GitopsError> {
    edit::plan(root, paths, markers, updates)
}

/// Writes `updates` into the repository of `spec` and pushes one commit.
///
/// Shallow-clones the branch into a fresh directory under `scratch`
/// (removed afterwards), plans the edits ([`plan_edits`]), and when there
/// is something to change commits it as `author` with `message` (which
/// should name the event or CVE) and a `Freshen-Image:
/// <repository>[:tag]@<digest>` trailer per image, then pushes
/// `HEAD:<branch>`. When the push is refused because the branch moved
/// (`non-fast-forward`, `fetch first`, a lost ref lock), it fetches the new
/// tip, resets onto it and plans the edits again from scratch (no rebase,
/// so a conflicting line can't wedge it), up to [`RepoSpec::attempts`]
/// pushes. `event` fills `{event}` in [`RepoSpec::push_branch`].
pub async fn write_back(
    spec: &RepoSpec,
    updates: &[ImageUpdate],
    event: &str,
    message: &str,
    scratch: &Path,
) -> Result<WriteBack, GitopsError> {
    git::write_back(spec, updates, event, message, scratch).await
}
