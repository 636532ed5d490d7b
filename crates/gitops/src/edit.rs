//! The pure edit: which fields change in a checkout, and the new text.
//!
//! What to change is decided on the parsed documents (`serde_yaml_ng`);
//! where it is written comes from the outline. Each edited value is read
//! back from its bytes and compared with the parsed document before the
//! edit, and the whole edited file is parsed again and compared with the
//! documents as they should now be, so an edit changes the fields meant
//! and nothing else, or is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize as _;
use serde_yaml_ng::Value;

use crate::image::{self, Pick};
use crate::marker::{self, Field, Marker};
use crate::outline::{self, Doc, Line, Scalar, Seg, show_path};
use crate::{FileChange, FileEdit, GitopsError, ImageUpdate};

/// The keys whose items are containers with an `image`.
const CONTAINER_KEYS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The file names kustomize reads.
const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Checks that each update can be written into YAML as it is.
pub(crate) fn validate_updates(updates: &[ImageUpdate]) -> Result<(), GitopsError> {
    for u in updates {
        let bad = |reason: String| GitopsError::Update {
            image: u.image.name(),
            reason,
        };
        freshen_reference::parse_digest(&u.digest).map_err(bad)?;
        if let Some(t) = &u.tag {
            u.image
                .with_tag(t)
                .map_err(|e| bad(format!("tag {t:?}: {e}")))?;
        }
    }
    Ok(())
}

/// See [`crate::plan_edits`].
pub(crate) fn plan(
    root: &Path,
    paths: &[String],
    markers: &BTreeMap<String, String>,
    updates: &[ImageUpdate],
) -> Result<Vec<FileEdit>, GitopsError> {
    validate_updates(updates)?;
    let root = canonical_root(root)?;
    let mut out = Vec::new();
    for rel in collect(&root, paths)? {
        // Found through no symbolic link; checked again all the same.
        let real = inside(&root, Path::new(&rel), &rel)?;
        let bytes = std::fs::read(real).map_err(|source| GitopsError::Io {
            file: rel.clone(),
            source,
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let line = 1 + e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count();
                return Err(GitopsError::Yaml {
                    file: rel,
                    line: Some(line),
                    message: "not UTF-8 text".into(),
                });
            }
        };
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        let kustomization = KUSTOMIZATION_NAMES.contains(&name);
        if let Some((text, changes)) = plan_text(&rel, &text, kustomization, markers, updates)? {
            out.push(FileEdit {
                path: PathBuf::from(&rel),
                text,
                changes,
            });
        }
    }
    Ok(out)
}

/// `abs` relative to `root`, with `/` separators.
fn relative(root: &Path, abs: &Path) -> String {
    abs.strip_prefix(root)
        .unwrap_or(abs)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `root` with every symbolic link resolved.
pub(crate) fn canonical_root(root: &Path) -> Result<PathBuf, GitopsError> {
    root.canonicalize().map_err(|source| GitopsError::Io {
        file: ".".into(),
        source,
    })
}

/// Where `rel` (relative to the repository root `root`, already
/// canonical) is, when it is in the repository and reached through no
/// symbolic link: a link, anywhere on the way, could take a read or a
/// write out of the checkout (a repository can hold `apps -> /etc`).
/// Errors name `shown`, the path as configured or found.
pub(crate) fn inside(root: &Path, rel: &Path, shown: &str) -> Result<PathBuf, GitopsError> {
    let bad = |reason: String| GitopsError::Path {
        path: shown.to_string(),
        reason,
    };
    let lexical = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .fold(root.to_path_buf(), |p, s| p.join(s));
    let real = match lexical.canonicalize() {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if std::fs::symlink_metadata(&lexical).is_ok() {
                bad("is a symbolic link to nothing in the repository".into())
            } else {
                bad("is not in the repository".into())
            });
        }
        Err(source) => {
            return Err(GitopsError::Io {
                file: shown.to_string(),
                source,
            });
        }
    };
    if !real.starts_with(root) {
        return Err(bad("leaves the repository (a symbolic link?)".into()));
    }
    if real != lexical {
        return Err(bad(format!(
            "is or goes through a symbolic link; name the file or directory it points to ({:?})",
            relative(root, &real)
        )));
    }
    Ok(real)
}

/// The files to read under `paths`, relative to `root` (canonical), sorted.
fn collect(root: &Path, paths: &[String]) -> Result<BTreeSet<String>, GitopsError> {
    let mut found = BTreeSet::new();
    for p in paths {
        let bad = |reason: &str| GitopsError::Path {
            path: p.clone(),
            reason: reason.to_string(),
        };
        let path = Path::new(p);
        if p.is_empty() {
            return Err(bad("is empty; use \".\" for the whole repository"));
        }
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(bad(
                "must be relative to the repository root, without \"..\"",
            ));
        }
        // `symlink_metadata` alone would not do: `apps/` reads as the
        // directory a link `apps` points to, and links on the way are
        // followed.
        let abs = inside(root, path, p)?;
        let meta = std::fs::symlink_metadata(&abs).map_err(|source| GitopsError::Io {
            file: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(root, &abs, &mut found)?;
        } else if meta.is_file() {
            found.insert(relative(root, &abs));
        } else {
            return Err(bad("is neither a file nor a directory"));
        }
    }
    Ok(found)
}

fn walk(root: &Path, dir: &Path, found: &mut BTreeSet<String>) -> Result<(), GitopsError> {
    let io = |source| GitopsError::Io {
        file: relative(root, dir),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    let chart = std::fs::symlink_metadata(dir.join("Chart.yaml")).is_ok_and(|m| m.is_file());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let kind = e.file_type().map_err(io)?;
        if kind.is_symlink() {
            tracing::debug!(path = %relative(root, &e.path()), "symbolic link not followed");
        } else if kind.is_dir() {
            if name != ".git" && !(chart && name == "templates") {
                walk(root, &e.path(), found)?;
            }
        } else if kind.is_file()
            && (name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization")
        {
            found.insert(relative(root, &e.path()));
        }
    }
    Ok(())
}

/// The edits for one file's text: `None` when nothing changes.
/// `kustomization`: the file is one kustomize reads (its `images:` count).
pub(crate) fn plan_text(
    file: &str,
    text: &str,
    kustomization: bool,
    markers: &BTreeMap<String, String>,
    updates: &[ImageUpdate],
) -> Result<Option<(String, Vec<FileChange>)>, GitopsError> {
    check_yaml(file, text)?;
    let lines = outline::lines(text);
    let docs = outline::outline(&lines);
    let values = doc_values(file, &lines, &docs)?;
    let mut p = Planner {
        file,
        lines: &lines,
        docs: &docs,
        values: &values,
        updates,
        edits: Vec::new(),
        touched: BTreeSet::new(),
        marked: BTreeSet::new(),
    };
    if updates.is_empty() {
        return Ok(None);
    }
    p.markers(markers)?;
    if kustomization {
        p.kustomize()?;
    }
    p.containers()?;
    if p.edits.is_empty() {
        return Ok(None);
    }
    p.apply().map(Some)
}

/// Every document of `text` parses.
fn check_yaml(file: &str, text: &str) -> Result<(), GitopsError> {
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        if let Err(e) = Value::deserialize(doc) {
            return Err(GitopsError::Yaml {
                file: file.to_string(),
                line: e.location().map(|l| l.line()),
                message: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Each document of the outline, parsed on its own.
fn doc_values(file: &str, lines: &[Line<'_>], docs: &[Doc]) -> Result<Vec<Value>, GitopsError> {
    docs.iter()
        .map(|d| {
            if !d.has_content(lines) {
                return Ok(Value::Null);
            }
            serde_yaml_ng::from_str::<Value>(&d.text(lines)).map_err(|e| GitopsError::Unsupported {
                file: file.to_string(),
                line: d.first + 1,
                field: "the document".into(),
                reason: format!("it does not read on its own as YAML ({e})"),
            })
        })
        .collect()
}

fn value_at<'v>(v: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.as_mapping()?.get(k.as_str()),
        Seg::Index(i) => v.as_sequence()?.get(*i),
    })
}

fn set_at(v: &mut Value, path: &[Seg], new: Value) -> Option<()> {
    let (last, parents) = path.split_last()?;
    let mut cur = v;
    for seg in parents {
        cur = match seg {
            Seg::Key(k) => cur.as_mapping_mut()?.get_mut(k.as_str())?,
            Seg::Index(i) => cur.as_sequence_mut()?.get_mut(*i)?,
        };
    }
    match last {
        Seg::Key(k) => {
            cur.as_mapping_mut()?.insert(Value::String(k.clone()), new);
        }
        Seg::Index(i) => *cur.as_sequence_mut()?.get_mut(*i)? = new,
    }
    Some(())
}

/// A scalar's value as text (`1.27` for the number `1.27`); `""` for null.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// `new` as a plain scalar when YAML reads it back as that string, else
/// double-quoted.
fn plain_or_quoted(new: &str) -> String {
    let plain = !new.is_empty()
        && !new.contains(" #")
        && !new.contains(": ")
        && serde_yaml_ng::from_str::<Value>(new).ok() == Some(Value::String(new.to_string()));
    if plain {
        new.to_string()
    } else {
        double_quoted(new)
    }
}

fn double_quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `new` written the way `raw` was: in its quotes, or plain.
fn render(raw: &str, new: &str) -> String {
    match raw.as_bytes().first() {
        Some(b'"') => double_quoted(new),
        Some(b'\'') => format!("'{}'", new.replace('\'', "''")),
        None => format!(" {}", plain_or_quoted(new)),
        Some(_) => plain_or_quoted(new),
    }
}

#[derive(Debug)]
enum Op {
    /// Replace the bytes `start..end` of the line.
    Replace { start: usize, end: usize },
    /// Add `key: value` after the line, at column `col`.
    Insert { col: usize, key: &'static str },
}

#[derive(Debug)]
struct Edit {
    doc: usize,
    path: Vec<Seg>,
    line: usize,
    op: Op,
    image: String,
    old: String,
    new: String,
}

/// A marker found on a line, with the scalar it marks.
struct Found {
    doc: usize,
    line: usize,
    marker: Marker,
    scalar: Option<Scalar>,
}

struct Planner<'a> {
    file: &'a str,
    lines: &'a [Line<'a>],
    docs: &'a [Doc],
    values: &'a [Value],
    updates: &'a [ImageUpdate],
    edits: Vec<Edit>,
    /// Lines already edited.
    touched: BTreeSet<usize>,
    /// Lines with a marker for an image: the marker alone decides them.
    marked: BTreeSet<usize>,
}

impl Planner<'_> {
    fn unsupported(&self, line: usize, path: &[Seg], reason: &str) -> GitopsError {
        GitopsError::Unsupported {
            file: self.file.to_string(),
            line: line + 1,
            field: show_path(path),
            reason: reason.to_string(),
        }
    }

    /// Whether the scalar's bytes read as the value the document holds
    /// there: the outline found it where it is.
    fn located(&self, doc: usize, sc: &Scalar) -> bool {
        let raw = &self.lines[sc.line].text[sc.start..sc.end];
        let read = if raw.is_empty() {
            Some(Value::Null)
        } else {
            serde_yaml_ng::from_str::<Value>(raw).ok()
        };
        read.is_some() && read.as_ref() == value_at(&self.values[doc], &sc.path)
    }

    /// A located scalar's value as text. A number is taken as written, so
    /// a tag written `1.10` is `1.10` and not the number `1.1`.
    fn text_at(&self, doc: usize, sc: &Scalar) -> Option<String> {
        match value_at(&self.values[doc], &sc.path)? {
            Value::Number(_) if self.located(doc, sc) => {
                Some(self.lines[sc.line].text[sc.start..sc.end].to_string())
            }
            v => scalar_text(v),
        }
    }

    /// The update for a kustomize `images:` entry, by repository and the
    /// tag it names ([`image::pick`]).
    fn pick_entry(&self, line: usize, repository: &str, tag: Option<&str>) -> Option<&ImageUpdate> {
        self.picked(line, repository, image::pick(self.updates, repository, tag))
    }

    /// The update for a field holding an image the runtime pulls, by
    /// repository and the tag and digest it names ([`image::pick_runs`]).
    fn pick_runs(
        &self,
        line: usize,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Option<&ImageUpdate> {
        let pick = image::pick_runs(self.updates, repository, tag, digest);
        self.picked(line, repository, pick)
    }

    fn picked<'u>(&self, line: usize, repository: &str, pick: Pick<'u>) -> Option<&'u ImageUpdate> {
        match pick {
            Pick::One(u) => Some(u),
            Pick::None => None,
            Pick::Ambiguous(all) => {
                let digests: Vec<&str> = all.iter().map(|u| u.digest.as_str()).collect();
                tracing::warn!(
                    file = self.file,
                    line = line + 1,
                    repository,
                    digests = %digests.join(", "),
                    "several updates of this repository apply, with different digests, and the field says nothing more to choose by: left alone"
                );
                None
            }
        }
    }

    /// Sets the scalar to `new` (unless it holds it already, or its line
    /// was edited already, or a marker decides it and `by_marker` is not
    /// set).
    fn replace(
        &mut self,
        doc: usize,
        sc: &Scalar,
        new: String,
        image: &str,
        by_marker: bool,
    ) -> Result<(), GitopsError> {
        if !by_marker && self.marked.contains(&sc.line) {
            return Ok(());
        }
        if !self.located(doc, sc) {
            return Err(self.unsupported(
                sc.line,
                &sc.path,
                "its value is not written on this one line in a form freshen can edit in place (multi-line, flow style, an alias or a tag); write it as a plain or quoted value on one line",
            ));
        }
        let old = value_at(&self.values[doc], &sc.path)
            .and_then(scalar_text)
            .unwrap_or_default();
        if old == new || !self.touched.insert(sc.line) {
            return Ok(());
        }
        self.edits.push(Edit {
            doc,
            path: sc.path.clone(),
            line: sc.line,
            op: Op::Replace {
                start: sc.start,
                end: sc.end,
            },
            image: image.to_string(),
            old,
            new,
        });
        Ok(())
    }

    /// Fields marked `$freshen` or `$imagepolicy`.
    fn markers(&mut self, policies: &BTreeMap<String, String>) -> Result<(), GitopsError> {
        let mut found = Vec::new();
        for (di, d) in self.docs.iter().enumerate() {
            for (&line, &at) in &d.comments {
                let comment = &self.lines[line].text[at + 1..];
                let parsed =
                    marker::parse(comment, policies).map_err(|reason| GitopsError::Marker {
                        file: self.file.to_string(),
                        line: line + 1,
                        reason,
                    })?;
                let marker = match parsed {
                    None => continue,
                    Some(marker::Parsed::Foreign) => {
                        self.marked.insert(line);
                        continue;
                    }
                    Some(marker::Parsed::Marker(m)) => m,
                };
                let scalar = d
                    .scalars
                    .iter()
                    .rfind(|s| s.line == line && s.end <= at)
                    .cloned();
                found.push(Found {
                    doc: di,
                    line,
                    marker,
                    scalar,
                });
            }
        }
        self.marked.extend(found.iter().map(|f| f.line));
        for f in &found {
            // `:tag` and `:name` are read, never written: an update moves
            // a digest.
            if matches!(f.marker.field, Field::Tag | Field::Name) {
                continue;
            }
            let marker_error = |reason: String| GitopsError::Marker {
                file: self.file.to_string(),
                line: f.line + 1,
                reason,
            };
            // A marker that can't be followed is an error once the image
            // it follows moves.
            let moved = self
                .updates
                .iter()
                .any(|u| u.image.name() == f.marker.repository);
            let Some(sc) = &f.scalar else {
                if moved {
                    return Err(marker_error(
                        "the marked field has no value on this line that freshen can edit; write `key: value  # {marker}` with the value on the marker's line".into(),
                    ));
                }
                continue;
            };
            let current = self.text_at(f.doc, sc);
            let current = current.as_deref().filter(|c| !c.is_empty());
            // The tag the field follows (the marker's decides over the
            // value's) and the digest it holds.
            let (tag, digest) = match (f.marker.field, current) {
                (Field::Image, Some(c)) if image::repository(c).is_none() => {
                    if moved {
                        return Err(marker_error(format!(
                            "a whole-image marker, but the value {c:?} is not an image reference (use a :tag, :name or :digest marker on a part of an image)"
                        )));
                    }
                    continue;
                }
                (Field::Image, Some(c)) => {
                    let w = image::split(c);
                    (f.marker.tag.clone().or(w.tag.map(str::to_string)), w.digest)
                }
                (Field::Image, None) => (f.marker.tag.clone(), None),
                _ => (
                    f.marker.tag.clone().or_else(|| self.sibling_tag(f, &found)),
                    current,
                ),
            };
            let Some(u) = self.pick_runs(f.line, &f.marker.repository, tag.as_deref(), digest)
            else {
                continue;
            };
            let new = match (f.marker.field, current) {
                (Field::Digest, _) => u.digest.clone(),
                (_, None) => image::pin(&f.marker.image, &u.digest),
                (_, Some(c)) => image::pin(c, &u.digest),
            };
            let repository = u.image.name();
            self.replace(f.doc, &sc.clone(), new, &repository, true)?;
        }
        Ok(())
    }

    /// The value of a `:tag` marker of the same image in the same mapping
    /// as the `:digest` marker `f`.
    fn sibling_tag(&self, f: &Found, found: &[Found]) -> Option<String> {
        let parent = |s: &Scalar| s.path[..s.path.len().saturating_sub(1)].to_vec();
        let here = parent(f.scalar.as_ref()?);
        found
            .iter()
            .filter(|g| {
                g.doc == f.doc
                    && g.marker.field == Field::Tag
                    && g.marker.repository == f.marker.repository
            })
            .filter_map(|g| g.scalar.as_ref())
            .find(|s| parent(s) == here)
            .and_then(|s| self.text_at(f.doc, s))
            .filter(|t| !t.is_empty())
    }

    /// `images:` entries of a kustomization.
    fn kustomize(&mut self) -> Result<(), GitopsError> {
        for (di, d) in self.docs.iter().enumerate() {
            let Some(images) = self.values[di].get("images").and_then(Value::as_sequence) else {
                continue;
            };
            for (i, item) in images.iter().enumerate() {
                let Some(map) = item.as_mapping() else {
                    continue;
                };
                let text = |k: &str| map.get(k).and_then(scalar_text).filter(|s| !s.is_empty());
                // The image kustomize puts in place: newName, else name.
                let Some(effective) = text("newName").or_else(|| text("name")) else {
                    continue;
                };
                let Some(repository) = image::repository(&effective) else {
                    continue;
                };
                let item_path = vec![Seg::Key("images".into()), Seg::Index(i)];
                let mut tag_path = item_path.clone();
                tag_path.push(Seg::Key("newTag".into()));
                let tag = d
                    .scalar(&tag_path)
                    .and_then(|s| self.text_at(di, s))
                    .or_else(|| text("newTag"))
                    .filter(|t| !t.is_empty())
                    .or_else(|| image::split(&effective).tag.map(str::to_string));
                let mut digest_path = item_path.clone();
                digest_path.push(Seg::Key("digest".into()));
                let keys: Vec<&Scalar> = d
                    .scalars
                    .iter()
                    .filter(|s| {
                        s.path.len() == 3
                            && s.path[..2] == item_path[..]
                            && s.key_col.is_some()
                            && self.located(di, s)
                    })
                    .collect();
                let line = d.line_of(&item_path);
                let Some(u) = self.pick_entry(line, &repository, tag.as_deref()) else {
                    continue;
                };
                if map.contains_key("digest") {
                    let Some(sc) = d.scalar(&digest_path).cloned() else {
                        return Err(self.unsupported(
                            line,
                            &digest_path,
                            "its value is not written on one line; write `digest: sha256:…` on one line",
                        ));
                    };
                    self.replace(di, &sc, u.digest.clone(), &repository, false)?;
                    continue;
                }
                // No digest yet: add it under the entry's last key.
                let Some(last) = keys.iter().max_by_key(|s| s.line) else {
                    return Err(self.unsupported(
                        line,
                        &item_path,
                        "the entry is not a block mapping (one key per line), so freshen cannot add `digest:` to it",
                    ));
                };
                self.edits.push(Edit {
                    doc: di,
                    path: digest_path,
                    line: last.line,
                    op: Op::Insert {
                        col: last.key_col.unwrap_or(0),
                        key: "digest",
                    },
                    image: repository,
                    old: String::new(),
                    new: u.digest.clone(),
                });
            }
        }
        Ok(())
    }

    /// Container `image:` fields in documents that have a `kind`.
    fn containers(&mut self) -> Result<(), GitopsError> {
        for (di, d) in self.docs.iter().enumerate() {
            if self.values[di].get("kind").is_none() {
                continue;
            }
            let mut targets = Vec::new();
            find_images(&self.values[di], &mut Vec::new(), &mut targets);
            for (path, current) in targets {
                let Some(repository) = image::repository(&current) else {
                    tracing::debug!(file = self.file, field = %show_path(&path), "not an image reference");
                    continue;
                };
                let line = d.line_of(&path);
                let written = image::split(&current);
                let Some(u) = self.pick_runs(line, &repository, written.tag, written.digest) else {
                    continue;
                };
                let new = image::pin(&current, &u.digest);
                if new == current {
                    continue;
                }
                let Some(sc) = d.scalar(&path).cloned() else {
                    return Err(self.unsupported(
                        line,
                        &path,
                        "it is not written in block style (`image: …` on its own line)",
                    ));
                };
                self.replace(di, &sc, new, &repository, false)?;
            }
        }
        Ok(())
    }

    /// The new text, checked: every document reads as before but for the
    /// fields edited.
    fn apply(self) -> Result<(String, Vec<FileChange>), GitopsError> {
        let mut by_line: BTreeMap<usize, Vec<&Edit>> = BTreeMap::new();
        for e in &self.edits {
            by_line.entry(e.line).or_default().push(e);
        }
        let dominant_eol = self
            .lines
            .iter()
            .find(|l| !l.eol.is_empty())
            .map_or("\n", |l| l.eol);
        let mut out = String::new();
        let mut changes = Vec::new();
        let mut added = 0;
        let change = |e: &Edit, line: usize| FileChange {
            path: self.file.to_string(),
            line,
            field: show_path(&e.path),
            image: e.image.clone(),
            old: e.old.clone(),
            new: e.new.clone(),
        };
        for (i, l) in self.lines.iter().enumerate() {
            let edits = by_line.get(&i).map(Vec::as_slice).unwrap_or_default();
            let mut text = l.text.to_string();
            for e in edits {
                if let Op::Replace { start, end } = e.op {
                    let raw = &l.text[start..end];
                    text = format!(
                        "{}{}{}",
                        &l.text[..start],
                        render(raw, &e.new),
                        &l.text[end..]
                    );
                    changes.push(change(e, i + 1 + added));
                }
            }
            out.push_str(&text);
            let inserts: Vec<&&Edit> = edits
                .iter()
                .filter(|e| matches!(e.op, Op::Insert { .. }))
                .collect();
            if inserts.is_empty() {
                out.push_str(l.eol);
                continue;
            }
            out.push_str(if l.eol.is_empty() {
                dominant_eol
            } else {
                l.eol
            });
            for (k, e) in inserts.iter().enumerate() {
                if let Op::Insert { col, key } = e.op {
                    added += 1;
                    out.push_str(&" ".repeat(col));
                    out.push_str(key);
                    out.push_str(": ");
                    out.push_str(&plain_or_quoted(&e.new));
                    if k + 1 < inserts.len() || !l.eol.is_empty() {
                        out.push_str(if l.eol.is_empty() {
                            dominant_eol
                        } else {
                            l.eol
                        });
                    }
                    changes.push(change(e, i + 1 + added));
                }
            }
        }
        self.verify(&out)?;
        Ok((out, changes))
    }

    fn verify(&self, new_text: &str) -> Result<(), GitopsError> {
        let internal = |reason: String| GitopsError::Internal {
            file: self.file.to_string(),
            reason,
        };
        check_yaml(self.file, new_text).map_err(|e| internal(e.to_string()))?;
        let lines = outline::lines(new_text);
        let docs = outline::outline(&lines);
        if docs.len() != self.docs.len() {
            return Err(internal(format!(
                "{} documents became {}",
                self.docs.len(),
                docs.len()
            )));
        }
        let got = doc_values(self.file, &lines, &docs).map_err(|e| internal(e.to_string()))?;
        for (di, want) in self.values.iter().enumerate() {
            let mut want = want.clone();
            for e in self.edits.iter().filter(|e| e.doc == di) {
                set_at(&mut want, &e.path, Value::String(e.new.clone())).ok_or_else(|| {
                    internal(format!("{} is not in the document", show_path(&e.path)))
                })?;
            }
            if got[di] != want {
                return Err(internal(format!(
                    "document {} does not read as intended after the edit",
                    di + 1
                )));
            }
        }
        Ok(())
    }
}

/// Every `containers[*].image` (and init/ephemeral) string in `v`.
fn find_images(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, String)>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let Some(k) = k.as_str() else {
                    continue;
                };
                path.push(Seg::Key(k.to_string()));
                if CONTAINER_KEYS.contains(&k)
                    && let Some(items) = child.as_sequence()
                {
                    for (j, c) in items.iter().enumerate() {
                        if let Some(img) = c.get("image").and_then(Value::as_str) {
                            let mut p = path.clone();
                            p.push(Seg::Index(j));
                            p.push(Seg::Key("image".into()));
                            out.push((p, img.to_string()));
                        }
                    }
                }
                find_images(child, path, out);
                path.pop();
            }
        }
        Value::Sequence(items) => {
            for (j, c) in items.iter().enumerate() {
                path.push(Seg::Index(j));
                find_images(c, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
