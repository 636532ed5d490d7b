//! Where things sit in a YAML file's text: its lines, its documents, and
//! for each block-style scalar the path to it and the bytes it occupies.
//!
//! This is not a YAML parser. `serde_yaml_ng` says what a document means;
//! this outline only says where a value is written, so that an edit can
//! change those bytes and nothing else. Whatever it reads is checked
//! against the parsed document before an edit is made (see `edit.rs`), so
//! a misreading here refuses an edit instead of making a wrong one. Flow
//! collections (`[a, b]`, `{a: b}`), block scalars (`|`, `>`) and
//! multi-line quoted scalars are stepped over: nothing inside them is
//! located.

use std::collections::BTreeMap;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Renders a path the way a user reads it: `spec.containers[0].image`.
pub(crate) fn show_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// One line of the file: its text without the line break, and the break.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub text: &'a str,
    pub eol: &'a str,
}

/// Splits `text` into lines, keeping each line break (`\n` or `\r\n`).
pub(crate) fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                let (line, eol) = if i > 0 && rest.as_bytes()[i - 1] == b'\r' {
                    (&rest[..i - 1], &rest[i - 1..=i])
                } else {
                    (&rest[..i], &rest[i..=i])
                };
                out.push(Line { text: line, eol });
                rest = &rest[i + 1..];
            }
            None => {
                out.push(Line {
                    text: rest,
                    eol: "",
                });
                rest = "";
            }
        }
    }
    out
}

/// A scalar value written in block style on one line.
#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    /// Where it is in its document.
    pub path: Vec<Seg>,
    /// The line (0-based, in the file).
    pub line: usize,
    /// Its bytes in the line: `start..end`, quotes included. Empty for a
    /// key written with no value (`digest:`): then both are just after the
    /// colon.
    pub start: usize,
    /// See `start`.
    pub end: usize,
    /// The column of its key, when it is a mapping value.
    pub key_col: Option<usize>,
}

/// One document of a file.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    /// Its lines: `first..end` (0-based, in the file).
    pub first: usize,
    /// See `first`.
    pub end: usize,
    /// The scalars located in it.
    pub scalars: Vec<Scalar>,
    /// Lines with a comment outside any scalar: line -> byte offset of `#`.
    pub comments: BTreeMap<usize, usize>,
    /// The line each block key or sequence item starts on.
    pub starts: BTreeMap<Vec<Seg>, usize>,
}

impl Doc {
    /// The document's text, as its own YAML stream.
    pub fn text(&self, lines: &[Line<'_>]) -> String {
        lines[self.first..self.end]
            .iter()
            .map(|l| format!("{}{}", l.text, l.eol))
            .collect()
    }

    /// Whether the document holds anything but comments and markers.
    pub fn has_content(&self, lines: &[Line<'_>]) -> bool {
        lines[self.first..self.end].iter().any(|l| {
            let t = l.text.trim_start();
            !(t.is_empty()
                || t.starts_with('#')
                || t.starts_with('%')
                || is_doc_start(l.text) && after_marker(l.text).is_empty()
                || is_doc_end(l.text))
        })
    }

    /// The line (0-based) of `path`, or of its nearest ancestor that was
    /// located; else the document's first line.
    pub fn line_of(&self, path: &[Seg]) -> usize {
        (0..=path.len())
            .rev()
            .find_map(|n| self.starts.get(&path[..n]).copied())
            .unwrap_or(self.first)
    }

    /// The scalar at `path`, if it was located.
    pub fn scalar(&self, path: &[Seg]) -> Option<&Scalar> {
        self.scalars.iter().find(|s| s.path == path)
    }
}

fn marker_line(text: &str, marker: &str) -> bool {
    text.strip_prefix(marker)
        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
}

fn is_doc_start(text: &str) -> bool {
    marker_line(text, "---")
}

fn is_doc_end(text: &str) -> bool {
    marker_line(text, "...")
}

/// What follows `---` on its line, comments aside.
fn after_marker(text: &str) -> &str {
    let r = text[3..].trim();
    if r.starts_with('#') { "" } else { r }
}

/// Splits the file into documents at `---` and after `...` (markers at
/// column 0 always end a document, whatever came before them), and
/// outlines each.
pub(crate) fn outline(lines: &[Line<'_>]) -> Vec<Doc> {
    let mut bounds = Vec::new();
    let mut first = 0;
    for (i, l) in lines.iter().enumerate() {
        if is_doc_start(l.text) && i > first {
            bounds.push((first, i));
            first = i;
        } else if is_doc_end(l.text) {
            bounds.push((first, i + 1));
            first = i + 1;
        }
    }
    if first < lines.len() || bounds.is_empty() {
        bounds.push((first, lines.len()));
    }
    bounds
        .into_iter()
        .map(|(first, end)| {
            let mut s = Scanner::default();
            s.scan(lines, first, end);
            Doc {
                first,
                end,
                scalars: s.scalars,
                comments: s.comments,
                starts: s.starts,
            }
        })
        .collect()
}

#[derive(Debug)]
enum Kind {
    Map(Option<String>),
    Seq(usize),
}

#[derive(Debug)]
struct Frame {
    col: usize,
    kind: Kind,
    /// The current key or item has no value on its line yet.
    pending: bool,
}

/// What the lines being stepped over belong to.
#[derive(Debug, Clone, Copy)]
enum Skip {
    None,
    /// A block scalar: lines indented more than `min - 1`, and blank lines.
    Block {
        min: usize,
    },
    /// A flow collection still open, `depth` deep, maybe inside a quote.
    Flow {
        depth: usize,
        quote: Option<u8>,
    },
    /// A quoted scalar still open.
    Quoted(u8),
}

#[derive(Default)]
struct Scanner {
    stack: Vec<Frame>,
    scalars: Vec<Scalar>,
    comments: BTreeMap<usize, usize>,
    starts: BTreeMap<Vec<Seg>, usize>,
    skip: Option<Skip>,
    /// Nothing more can be located in this document (unsupported syntax).
    lost: bool,
}

fn indent(text: &str) -> usize {
    text.len() - text.trim_start_matches(' ').len()
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_ws(text: &str, mut at: usize) -> usize {
    let b = text.as_bytes();
    while at < b.len() && is_ws(b[at]) {
        at += 1;
    }
    at
}

/// The end of a quoted scalar that opens at `at` (the index after its
/// closing quote), if it closes on this line.
fn close_quote(text: &str, at: usize) -> Option<usize> {
    let b = text.as_bytes();
    let q = b[at];
    let mut i = at + 1;
    while i < b.len() {
        if q == b'"' && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Steps through flow text from `at` with the state given; returns the
/// new state, and where the collection closed (if it did) on this line.
fn step_flow(
    text: &str,
    at: usize,
    mut depth: usize,
    mut quote: Option<u8>,
) -> (Skip, Option<usize>) {
    let b = text.as_bytes();
    let mut i = at;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) => {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    quote = None;
                }
            }
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return (Skip::None, Some(i + 1));
                    }
                }
                b'#' if i > 0 && is_ws(b[i - 1]) => return (Skip::Flow { depth, quote }, None),
                _ => {}
            },
        }
        i += 1;
    }
    (Skip::Flow { depth, quote }, None)
}

/// A mapping key at the start of `s`: the key and the offset just after
/// its colon.
fn parse_key(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if first == b'"' || first == b'\'' {
        let end = close_quote(s, 0)?;
        let after = skip_ws(s, end);
        if b.get(after) == Some(&b':') && (after + 1 == b.len() || is_ws(b[after + 1])) {
            let inner = &s[1..end - 1];
            let key = if first == b'\'' {
                inner.replace("''", "'")
            } else {
                inner.replace("\\\"", "\"").replace("\\\\", "\\")
            };
            return Some((key, after + 1));
        }
        return None;
    }
    if b"[{#&!*|>?%@`-".contains(&first) && !(first == b'-' && b.len() > 1 && !is_ws(b[1])) {
        return None;
    }
    for i in 0..b.len() {
        if b[i] == b'#' && i > 0 && is_ws(b[i - 1]) {
            return None;
        }
        if b[i] == b':' && (i + 1 == b.len() || is_ws(b[i + 1])) {
            let key = s[..i].trim_end();
            return (!key.is_empty()).then(|| (key.to_string(), i + 1));
        }
    }
    None
}

impl Scanner {
    fn path(&self) -> Vec<Seg> {
        self.stack
            .iter()
            .map(|f| match &f.kind {
                Kind::Map(k) => Seg::Key(k.clone().unwrap_or_default()),
                Kind::Seq(i) => Seg::Index(*i),
            })
            .collect()
    }

    fn scan(&mut self, lines: &[Line<'_>], first: usize, end: usize) {
        for (i, line) in lines.iter().enumerate().take(end).skip(first) {
            let l = line.text;
            if is_doc_start(l) {
                if !after_marker(l).is_empty() {
                    // `--- value`: content on the marker line is not outlined.
                    self.lost = true;
                } else if let Some(c) = l.find('#') {
                    self.comments.insert(i, c);
                }
                continue;
            }
            if is_doc_end(l) {
                continue;
            }
            match self.skip.unwrap_or(Skip::None) {
                Skip::None => {}
                Skip::Block { min } => {
                    if l.trim().is_empty() || indent(l) >= min {
                        continue;
                    }
                    self.skip = None;
                }
                Skip::Flow { depth, quote } => {
                    let (state, closed) = step_flow(l, 0, depth, quote);
                    self.skip = Some(state);
                    if let Some(at) = closed {
                        self.skip = None;
                        self.trailing_comment(i, l, at);
                    }
                    continue;
                }
                Skip::Quoted(q) => {
                    let b = l.as_bytes();
                    let mut j = 0;
                    let mut closed = None;
                    while j < b.len() {
                        if q == b'"' && b[j] == b'\\' {
                            j += 2;
                            continue;
                        }
                        if b[j] == q {
                            if q == b'\'' && b.get(j + 1) == Some(&b'\'') {
                                j += 2;
                                continue;
                            }
                            closed = Some(j + 1);
                            break;
                        }
                        j += 1;
                    }
                    if let Some(at) = closed {
                        self.skip = None;
                        self.trailing_comment(i, l, at);
                    }
                    continue;
                }
            }
            if self.lost {
                continue;
            }
            let c = indent(l);
            let rest = &l[c..];
            if rest.trim().is_empty() {
                continue;
            }
            if rest.starts_with('#') {
                self.comments.insert(i, c);
                continue;
            }
            if rest.starts_with('%') || rest.starts_with('\t') {
                continue;
            }
            self.node(i, c, l, false);
        }
    }

    fn trailing_comment(&mut self, i: usize, l: &str, at: usize) {
        let j = skip_ws(l, at);
        if l.as_bytes().get(j) == Some(&b'#') {
            self.comments.insert(i, j);
        }
    }

    /// A node whose text starts at column `c` of line `i`. `item`: it
    /// follows a `- ` on the same line.
    fn node(&mut self, i: usize, c: usize, l: &str, item: bool) {
        let s = &l[c..];
        let b = s.as_bytes();
        let dash = b[0] == b'-' && (b.len() == 1 || is_ws(b[1]));
        let key = if dash { None } else { parse_key(s) };
        if !item {
            while let Some(top) = self.stack.last() {
                let keep = if top.col < c {
                    true
                } else if top.col == c {
                    match top.kind {
                        Kind::Seq(_) => dash,
                        Kind::Map(_) => !dash || top.pending,
                    }
                } else {
                    false
                };
                if keep {
                    break;
                }
                self.stack.pop();
            }
        }
        if dash {
            match self.stack.last_mut() {
                Some(Frame {
                    col,
                    kind: Kind::Seq(n),
                    pending,
                }) if *col == c => {
                    *n += 1;
                    *pending = false;
                }
                _ => {
                    if let Some(top) = self.stack.last_mut() {
                        top.pending = false;
                    }
                    self.stack.push(Frame {
                        col: c,
                        kind: Kind::Seq(0),
                        pending: false,
                    });
                }
            }
            self.starts.entry(self.path()).or_insert(i);
            let rc = skip_ws(l, c + 1);
            if rc >= l.len() || l.as_bytes()[rc] == b'#' {
                if rc < l.len() {
                    self.comments.insert(i, rc);
                }
                if let Some(top) = self.stack.last_mut() {
                    top.pending = true;
                }
                return;
            }
            self.node(i, rc, l, true);
            return;
        }
        if let Some((k, after)) = key {
            match self.stack.last_mut() {
                Some(Frame {
                    col,
                    kind: Kind::Map(cur),
                    pending,
                }) if *col == c => {
                    *cur = Some(k);
                    *pending = false;
                }
                _ => {
                    if let Some(top) = self.stack.last_mut() {
                        top.pending = false;
                    }
                    self.stack.push(Frame {
                        col: c,
                        kind: Kind::Map(Some(k)),
                        pending: false,
                    });
                }
            }
            self.starts.entry(self.path()).or_insert(i);
            self.value(i, c + after, l, c, Some(c));
            return;
        }
        // A scalar (or a flow collection) standing alone on its line: an
        // item after `- `, or the value of a key on the line above.
        let pending = self.stack.last().is_some_and(|f| f.pending);
        if item || pending {
            if let Some(top) = self.stack.last_mut() {
                top.pending = false;
            }
            if !item {
                // `key:` was noted as empty on its own line; this is its value.
                let path = self.path();
                self.scalars.retain(|s| s.path != path);
            }
            let owner = self.stack.last().map_or(0, |f| f.col);
            self.value(i, c, l, owner, None);
        } else {
            // The continuation of a multi-line plain scalar: the value
            // begun above is not on one line, so it is not located.
            let path = self.path();
            self.scalars.retain(|s| s.path != path);
        }
    }

    /// The value part of a line, from byte `at`. `owner`: the column of
    /// the key or dash it belongs to (a block scalar's lines are indented
    /// more).
    fn value(&mut self, i: usize, at: usize, l: &str, owner: usize, key_col: Option<usize>) {
        let b = l.as_bytes();
        let mut p = skip_ws(l, at);
        if p >= b.len() || b[p] == b'#' {
            if p < b.len() {
                self.comments.insert(i, p);
            }
            if let Some(top) = self.stack.last_mut() {
                top.pending = true;
            }
            if key_col.is_some() {
                // `key:` with nothing after it: null, or a nested node on
                // the lines below (then the check against the parsed
                // document keeps this from being edited as a scalar).
                self.scalars.push(Scalar {
                    path: self.path(),
                    line: i,
                    start: at,
                    end: at,
                    key_col,
                });
            }
            return;
        }
        // Anchors and tags come before the value.
        while p < b.len() && (b[p] == b'&' || b[p] == b'!') {
            while p < b.len() && !is_ws(b[p]) {
                p += 1;
            }
            p = skip_ws(l, p);
        }
        if p >= b.len() || b[p] == b'#' {
            if p < b.len() {
                self.comments.insert(i, p);
            }
            if let Some(top) = self.stack.last_mut() {
                top.pending = true;
            }
            return;
        }
        match b[p] {
            b'|' | b'>' => {
                self.skip = Some(Skip::Block { min: owner + 1 });
                if let Some(h) = l[p..].find(" #") {
                    self.comments.insert(i, p + h + 1);
                }
            }
            b'*' => {
                self.trailing_comment(i, l, l[p..].find([' ', '\t']).map_or(b.len(), |e| p + e))
            }
            b'[' | b'{' => {
                let (state, closed) = step_flow(l, p, 0, None);
                match closed {
                    Some(e) => self.trailing_comment(i, l, e),
                    None => self.skip = Some(state),
                }
            }
            b'"' | b'\'' => match close_quote(l, p) {
                Some(e) => {
                    self.scalars.push(Scalar {
                        path: self.path(),
                        line: i,
                        start: p,
                        end: e,
                        key_col,
                    });
                    self.trailing_comment(i, l, e);
                }
                None => self.skip = Some(Skip::Quoted(b[p])),
            },
            _ => {
                let mut e = b.len();
                for j in p..b.len() {
                    if b[j] == b'#' && is_ws(b[j - 1]) {
                        e = j;
                        self.comments.insert(i, j);
                        break;
                    }
                }
                let end = p + l[p..e].trim_end().len();
                self.scalars.push(Scalar {
                    path: self.path(),
                    line: i,
                    start: p,
                    end,
                    key_col,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(docs: &'a [Doc], doc: usize, path: &str) -> Option<&'a Scalar> {
        docs[doc]
            .scalars
            .iter()
            .find(|s| show_path(&s.path) == path)
    }

    fn at<'a>(text: &'a str, docs: &[Doc], doc: usize, path: &str) -> Option<&'a str> {
        let ls = lines(text);
        find(docs, doc, path).map(|s| &ls[s.line].text[s.start..s.end])
    }

    #[test]
    fn locates_block_values() {
        let text = "\
# top
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: busybox:1.36 # pinned
      containers:
        - name: web
          image: \"nginx:1.27\"
        -   name: side
            image: 'a''b'
      volumes: [{name: x}]
      other: |
        image: not-this
         - neither
      after: value
---
- - nested
  - two
- key: v
...
plain: doc
";
        let ls = lines(text);
        let docs = outline(&ls);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            at(text, &docs, 0, "spec.template.spec.initContainers[0].image"),
            Some("busybox:1.36")
        );
        assert_eq!(
            at(text, &docs, 0, "spec.template.spec.containers[0].image"),
            Some("\"nginx:1.27\"")
        );
        assert_eq!(
            at(text, &docs, 0, "spec.template.spec.containers[1].image"),
            Some("'a''b'")
        );
        assert_eq!(
            at(text, &docs, 0, "spec.template.spec.after"),
            Some("value")
        );
        assert!(
            docs[0]
                .scalars
                .iter()
                .all(|s| !ls[s.line].text.contains("not-this"))
        );
        assert_eq!(at(text, &docs, 1, "[0][0]"), Some("nested"));
        assert_eq!(at(text, &docs, 1, "[0][1]"), Some("two"));
        assert_eq!(at(text, &docs, 1, "[1].key"), Some("v"));
        assert_eq!(at(text, &docs, 2, "plain"), Some("doc"));
        // Comments are known by line, outside scalars.
        assert_eq!(docs[0].comments.get(&0), Some(&0));
        assert!(docs[0].comments.contains_key(&8));
    }

    #[test]
    fn multi_line_values_are_not_located() {
        let text = "a: one\n  two\nb: \"x\n  y\"\nc: [1,\n 2]\nd: ok\n";
        let ls = lines(text);
        let docs = outline(&ls);
        assert!(find(&docs, 0, "a").is_none());
        assert!(find(&docs, 0, "b").is_none());
        assert!(find(&docs, 0, "c").is_none());
        assert_eq!(at(text, &docs, 0, "d"), Some("ok"));
    }

    #[test]
    fn keys_with_empty_values_and_crlf() {
        let text = "images:\r\n- name: nginx\r\n  digest:\r\n  newTag: \"1\" # c\r\n";
        let ls = lines(text);
        assert_eq!(ls[0].eol, "\r\n");
        let docs = outline(&ls);
        let d = find(&docs, 0, "images[0].digest").unwrap();
        assert_eq!((d.start, d.end), (9, 9));
        assert_eq!(at(text, &docs, 0, "images[0].newTag"), Some("\"1\""));
        assert_eq!(docs[0].comments.get(&3), Some(&14));
    }
}
