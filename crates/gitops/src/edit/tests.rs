//! The three kinds of edits on text: kustomizations, container images,
//! marked fields; and what is refused.

use super::*;
use freshen_reference::Reference;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn update(image: &str, tag: Option<&str>, c: char) -> ImageUpdate {
    ImageUpdate {
        image: Reference::parse(image).unwrap(),
        tag: tag.map(str::to_string),
        digest: digest(c),
        old_digests: Vec::new(),
    }
}

/// An update that knows the digests its image had before.
fn moved(image: &str, tag: Option<&str>, c: char, old: &[char]) -> ImageUpdate {
    ImageUpdate {
        old_digests: old.iter().map(|c| digest(*c)).collect(),
        ..update(image, tag, c)
    }
}

fn updates() -> Vec<ImageUpdate> {
    vec![
        update("docker.io/library/nginx", Some("1.27"), 'a'),
        update("localhost:5000/app", Some("1"), 'b'),
        update("registry.example.com/team/job", Some("2"), 'c'),
    ]
}

fn policies() -> BTreeMap<String, String> {
    [
        (
            "flux-system:app".to_string(),
            "localhost:5000/app".to_string(),
        ),
        ("flux-system:web".to_string(), "nginx".to_string()),
    ]
    .into()
}

/// The new text, or `None` when unchanged.
fn edit(text: &str, kustomization: bool) -> Option<String> {
    plan_text("f.yaml", text, kustomization, &policies(), &updates())
        .unwrap()
        .map(|(t, _)| t)
}

#[test]
fn kustomization_images_get_a_digest() {
    let text = format!(
        "\
# Production overlay: comments stay.
resources:
  - ../../base
images:
  - name: nginx        # the web server
    newTag: \"1.27\"
  - name: app
    newName: localhost:5000/app
    digest: {old}   # pinned
  - name: busybox
    newTag: \"1.36\"
  - name: docker.io/library/nginx
    newTag: \"1.26\"   # another tag: stays
",
        old = digest('0')
    );
    let (new, changes) = plan_text("k.yaml", &text, true, &policies(), &updates())
        .unwrap()
        .unwrap();
    let want = text
        .replace(
            "    newTag: \"1.27\"\n",
            &format!("    newTag: \"1.27\"\n    digest: {}\n", digest('a')),
        )
        .replace(&digest('0'), &digest('b'));
    assert_eq!(new, want);
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].field, "images[0].digest");
    assert_eq!(changes[0].line, 7);
    assert_eq!(changes[0].old, "");
    assert_eq!(changes[0].image, "docker.io/library/nginx");
    assert_eq!(changes[1].field, "images[1].digest");
    assert_eq!(changes[1].line, 10);
    assert_eq!(changes[1].old, digest('0'));

    // Only kustomizations have `images:` entries.
    assert_eq!(edit(&text, false), None);
}

#[test]
fn kustomization_entry_on_the_dash_line_and_no_trailing_newline() {
    let text = "images:\n- name: localhost:5000/app\n  newTag: \"1\"";
    assert_eq!(
        edit(text, true).unwrap(),
        format!(
            "images:\n- name: localhost:5000/app\n  newTag: \"1\"\n  digest: {}",
            digest('b')
        )
    );
    let text = "images:\r\n  - {name: localhost:5000/app, newTag: \"1\"}\r\n";
    let err = plan_text("k.yaml", text, true, &policies(), &updates()).unwrap_err();
    assert!(
        err.to_string()
            .contains("k.yaml: line 2: cannot edit images[0]"),
        "{err}"
    );
}

#[test]
fn container_images_are_pinned_as_written() {
    let text = format!(
        "\
---
# A deployment.
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: \"localhost:5000/app:1\"  # quoted, with a port
      containers:
      - name: web
        image: nginx   # nginx:latest, not 1.27: stays
      - name: pinned
        image: nginx:1.27@{old}
      - name: quoted
        image: 'docker.io/library/nginx:1.27'
      - name: older
        image: nginx:1.26
      - name: other
        image: redis:7
---
apiVersion: v1
kind: ConfigMap
data:
  image: nginx:1.27
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - image: registry.example.com/team/job:2
              name: job
---
# No kind: not a manifest.
containers:
- image: nginx:1.27
",
        old = digest('0')
    );
    let new = edit(&text, false).unwrap();
    let want = text
        .replace(
            "\"localhost:5000/app:1\"",
            &format!("\"localhost:5000/app:1@{}\"", digest('b')),
        )
        .replace(
            &format!("nginx:1.27@{}", digest('0')),
            &format!("nginx:1.27@{}", digest('a')),
        )
        .replace(
            "'docker.io/library/nginx:1.27'",
            &format!("'docker.io/library/nginx:1.27@{}'", digest('a')),
        )
        .replace(
            "image: registry.example.com/team/job:2\n",
            &format!("image: registry.example.com/team/job:2@{}\n", digest('c')),
        );
    assert_eq!(new, want);
    // Once pinned, the same updates change nothing.
    assert_eq!(edit(&new, false), None);
}

#[test]
fn crlf_files_keep_their_line_breaks() {
    let text = "kind: Pod\r\nspec:\r\n  containers:\r\n  - image: nginx:1.27 # web\r\n";
    assert_eq!(
        edit(text, false).unwrap(),
        format!(
            "kind: Pod\r\nspec:\r\n  containers:\r\n  - image: nginx:1.27@{} # web\r\n",
            digest('a')
        )
    );
}

#[test]
fn marked_fields() {
    let text = r#"# Helm values.
replicaCount: 1
image:
  repository: localhost:5000/app # {"$imagepolicy": "flux-system:app:name"}
  tag: "1" # {"$imagepolicy": "flux-system:app:tag"}
  digest: "" # {"$imagepolicy": "flux-system:app:digest"}
worker:
  image: localhost:5000/app:1 # {"$freshen": "localhost:5000/app"}
web:
  image: nginx:1.27 # {"$imagepolicy": "flux-system:web"}
  pin: # {"$freshen": "nginx:1.27:digest"}
  other: nginx:1.27
  flux: x:1 # {"$imagepolicy": "flux-system:unmapped"}
list:
  - nginx:1.27 # {"$freshen": "nginx"}
"#;
    let new = edit(text, false).unwrap();
    let (a, b) = (digest('a'), digest('b'));
    let want = text
        .replace(r#"digest: "" #"#, &format!(r#"digest: "{b}" #"#))
        .replace(
            "image: localhost:5000/app:1 #",
            &format!("image: localhost:5000/app:1@{b} #"),
        )
        .replace("image: nginx:1.27 #", &format!("image: nginx:1.27@{a} #"))
        .replace("  pin: #", &format!("  pin: {a} #"))
        .replace("  - nginx:1.27 #", &format!("  - nginx:1.27@{a} #"));
    assert_eq!(new, want);
    assert_eq!(edit(&new, false), None);
}

#[test]
fn a_digest_marker_takes_its_tag_from_the_tag_marker_beside_it() {
    let text = r#"image:
  repository: nginx # {"$freshen": "nginx:name"}
  tag: "1.26" # {"$freshen": "nginx:tag"}
  digest: sha256:old # {"$freshen": "nginx:digest"}
"#;
    // The only nginx update is for 1.27: this field pins 1.26.
    assert_eq!(edit(text, false), None);
    let text = text.replace("1.26", "1.27");
    assert!(
        edit(&text, false)
            .unwrap()
            .contains(&format!("digest: {}", digest('a')))
    );
}

#[test]
fn numbers_are_read_as_written_and_markers_decide_their_lines() {
    let ups = vec![
        update("nginx", Some("1.10"), 'a'),
        update("redis", None, 'b'),
    ];
    let text = "images:\n- name: nginx\n  newTag: 1.10\n";
    let (new, _) = plan_text("k.yaml", text, true, &policies(), &ups)
        .unwrap()
        .unwrap();
    assert_eq!(new, format!("{text}  digest: {}\n", digest('a')));
    let text = "image:\n  tag: 1.10 # {\"$freshen\": \"nginx:tag\"}\n  digest: x # {\"$freshen\": \"nginx:digest\"}\n";
    let (new, _) = plan_text("v.yaml", text, false, &policies(), &ups)
        .unwrap()
        .unwrap();
    assert!(new.contains(&format!("digest: {} #", digest('a'))), "{new}");
    // A Flux policy freshen has no mapping for: the line is Flux's.
    let text = "kind: Pod\nspec:\n  containers:\n  - image: redis:7 # {\"$imagepolicy\": \"flux-system:redis\"}\n";
    assert_eq!(
        plan_text("p.yaml", text, false, &policies(), &ups).unwrap(),
        None
    );
    // The marker names the image this line follows; the value alone does not.
    let text =
        "kind: Pod\nspec:\n  containers:\n  - image: redis:7 # {\"$freshen\": \"nginx:1.9\"}\n";
    assert_eq!(
        plan_text("p.yaml", text, false, &policies(), &ups).unwrap(),
        None
    );
}

/// `web:1` moved from `0` to `a`; `app:latest` from `1` to `b`.
fn rule_updates() -> Vec<ImageUpdate> {
    vec![
        moved("web", Some("1"), 'a', &['0']),
        moved("app", Some("latest"), 'b', &['1']),
    ]
}

fn plan_rules(text: &str) -> Option<String> {
    plan_text("r.yaml", text, false, &policies(), &rule_updates())
        .unwrap()
        .map(|(t, _)| t)
}

#[test]
fn a_container_field_with_a_tag_follows_that_tag_only() {
    let (z, a) = (digest('0'), digest('a'));
    let text = format!(
        "kind: Pod\nspec:\n  containers:\n  - image: web:1\n  - image: web:1@{z}\n  - image: web:2\n  - image: web:2@{z}\n  - image: web:1@{a}\n"
    );
    assert_eq!(
        plan_rules(&text).unwrap(),
        format!(
            "kind: Pod\nspec:\n  containers:\n  - image: web:1@{a}\n  - image: web:1@{a}\n  - image: web:2\n  - image: web:2@{z}\n  - image: web:1@{a}\n"
        )
    );
    // An update that names no tag does not move a field that names one.
    let ups = [moved("web", None, 'a', &['0'])];
    let text = "kind: Pod\nspec:\n  containers:\n  - image: web:1\n";
    assert_eq!(
        plan_text("r.yaml", text, false, &policies(), &ups).unwrap(),
        None
    );
}

#[test]
fn a_container_field_with_neither_tag_nor_digest_is_latest() {
    // `web` is `web:latest`: the update of `web:1` leaves it alone.
    let text = "kind: Pod\nspec:\n  containers:\n  - image: web\n";
    assert_eq!(plan_rules(text), None);
    let text = "kind: Pod\nspec:\n  containers:\n  - image: app\n  - image: app:latest\n";
    let b = digest('b');
    assert_eq!(
        plan_rules(text).unwrap(),
        format!("kind: Pod\nspec:\n  containers:\n  - image: app@{b}\n  - image: app:latest@{b}\n")
    );
    // Two updates of `latest` that disagree: left alone.
    let ups = [
        update("app", Some("latest"), 'b'),
        update("app", Some("latest"), 'c'),
    ];
    let text = "kind: Pod\nspec:\n  containers:\n  - image: app\n";
    assert_eq!(
        plan_text("r.yaml", text, false, &policies(), &ups).unwrap(),
        None
    );
}

#[test]
fn a_container_field_pinned_without_a_tag_follows_the_digests_the_image_had() {
    let (z, nine, a) = (digest('0'), digest('9'), digest('a'));
    let text = format!(
        "kind: Pod\nspec:\n  containers:\n  - image: web@{z}\n  - image: web@{nine}\n  - image: web@{a}\n"
    );
    let (new, changes) = plan_text("r.yaml", &text, false, &policies(), &rule_updates())
        .unwrap()
        .unwrap();
    // The digest `web:1` had moves; one freshen never saw, or the new
    // one, stays.
    assert_eq!(new, text.replacen(&z, &a, 1));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].field, "spec.containers[0].image");
    assert_eq!(changes[0].old, format!("web@{z}"));
    // Without the old digests nothing says the field runs `web:1`.
    let ups = [update("web", Some("1"), 'a')];
    assert_eq!(
        plan_text("r.yaml", &text, false, &policies(), &ups).unwrap(),
        None
    );
}

#[test]
fn marked_fields_follow_the_same_rules() {
    let (z, one, nine, a, b) = (
        digest('0'),
        digest('1'),
        digest('9'),
        digest('a'),
        digest('b'),
    );
    let text = format!(
        r#"latest: web # {{"$freshen": "web"}}
tagged: web:1 # {{"$freshen": "web"}}
other: web:2@{z} # {{"$freshen": "web"}}
old: web@{z} # {{"$freshen": "web"}}
unknown: web@{nine} # {{"$freshen": "web"}}
bymarker: web@{nine} # {{"$freshen": "web:1"}}
empty: "" # {{"$freshen": "web"}}
emptylatest: "" # {{"$freshen": "app"}}
digest:
  old: {z} # {{"$freshen": "web:digest"}}
  unknown: {nine} # {{"$freshen": "web:digest"}}
  current: {a} # {{"$freshen": "web:digest"}}
  empty: "" # {{"$freshen": "web:digest"}}
  emptylatest: "" # {{"$freshen": "app:digest"}}
  applatest: {one} # {{"$freshen": "app:digest"}}
tagmarker:
  tag: "1" # {{"$freshen": "web:tag"}}
  digest: {nine} # {{"$freshen": "web:digest"}}
"#
    );
    let want = format!(
        r#"latest: web # {{"$freshen": "web"}}
tagged: web:1@{a} # {{"$freshen": "web"}}
other: web:2@{z} # {{"$freshen": "web"}}
old: web@{a} # {{"$freshen": "web"}}
unknown: web@{nine} # {{"$freshen": "web"}}
bymarker: web@{a} # {{"$freshen": "web:1"}}
empty: "" # {{"$freshen": "web"}}
emptylatest: "app@{b}" # {{"$freshen": "app"}}
digest:
  old: {a} # {{"$freshen": "web:digest"}}
  unknown: {nine} # {{"$freshen": "web:digest"}}
  current: {a} # {{"$freshen": "web:digest"}}
  empty: "" # {{"$freshen": "web:digest"}}
  emptylatest: "{b}" # {{"$freshen": "app:digest"}}
  applatest: {b} # {{"$freshen": "app:digest"}}
tagmarker:
  tag: "1" # {{"$freshen": "web:tag"}}
  digest: {a} # {{"$freshen": "web:digest"}}
"#
    );
    assert_eq!(plan_rules(&text).unwrap(), want);
    assert_eq!(plan_rules(&want), None);
}

#[test]
fn kustomize_entries_follow_the_repository() {
    // An entry retags every image of its repository: with no tag of its
    // own it takes the repository's update (even `web:1` for `name: web`),
    // with one an update of that tag or one that names no tag.
    let text = "images:\n- name: web\n- name: web\n  newTag: \"2\"\n- name: app\n  newTag: v9\n";
    let ups = [
        moved("web", Some("1"), 'a', &['0']),
        update("app", None, 'b'),
    ];
    let (new, _) = plan_text("k.yaml", text, true, &policies(), &ups)
        .unwrap()
        .unwrap();
    assert_eq!(
        new,
        format!(
            "images:\n- name: web\n  digest: {}\n- name: web\n  newTag: \"2\"\n- name: app\n  newTag: v9\n  digest: {}\n",
            digest('a'),
            digest('b')
        )
    );
    // Updates of the repository that disagree, and an entry with no tag:
    // left alone.
    let ups = [update("web", Some("1"), 'a'), update("web", Some("2"), 'b')];
    let text = "images:\n- name: web\n- name: web\n  newTag: \"2\"\n";
    let (new, changes) = plan_text("k.yaml", text, true, &policies(), &ups)
        .unwrap()
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(new, format!("{text}  digest: {}\n", digest('b')));
}

#[test]
fn refusals_name_the_file_and_line() {
    let err = |text: &str| {
        plan_text("dir/bad.yaml", text, false, &policies(), &updates())
            .unwrap_err()
            .to_string()
    };
    let e = err("kind: Pod\nmetadata:\n  name: a: b\nspec: {}\n");
    assert!(e.starts_with("dir/bad.yaml: line 3: not valid YAML"), "{e}");
    let e = err("kind: Pod\nkind: Job\n");
    assert!(e.starts_with("dir/bad.yaml: "), "{e}");
    assert!(e.contains("not valid YAML"), "{e}");
    assert!(e.contains("duplicate entry with key \"kind\""), "{e}");

    let e = err("kind: Pod\nspec: {containers: [{image: nginx:1.27}]}\n");
    assert!(
        e.starts_with("dir/bad.yaml: line 2: cannot edit spec.containers[0].image"),
        "{e}"
    );

    let e = err("kind: Pod\nspec:\n  containers:\n  - image: >-\n      nginx:1.27\n");
    assert!(e.contains("cannot edit spec.containers[0].image"), "{e}");

    let e = err("values:\n  image: \"{{ .Values.x }}\" # {\"$freshen\": \"nginx\"}\n");
    assert!(e.starts_with("dir/bad.yaml: line 2: marker:"), "{e}");
    assert!(e.contains("not an image reference"), "{e}");

    let e = err("a: 1 # {\"$freshen\": \"Bad Image\"}\n");
    assert!(e.starts_with("dir/bad.yaml: line 1: marker:"), "{e}");

    let e = err("a: [x, y] # {\"$freshen\": \"nginx:digest\"}\n");
    assert!(e.contains("no value on this line"), "{e}");

    // A broken file is an error even when no update applies to it.
    let e = plan_text("x.yaml", "a: b: c\n", false, &policies(), &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("x.yaml: line 1"), "{e}");
}

#[test]
fn plan_walks_the_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |p: &str, text: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let pod = "kind: Pod\nspec:\n  containers:\n  - image: nginx:1.27\n";
    write("apps/a.yaml", pod);
    write("apps/b.yml", pod);
    write("apps/notes.txt", "image: nginx:1.27\n");
    write(
        "apps/Kustomization",
        "images:\n- name: nginx\n  newTag: \"1.27\"\n",
    );
    write("chart/Chart.yaml", "name: c\n");
    write(
        "chart/templates/d.yaml",
        "{{ if .x }}\nbroken: [\n{{ end }}\n",
    );
    write(
        "chart/values.yaml",
        "image: nginx:1.27 # {\"$freshen\": \"nginx\"}\n",
    );
    write("elsewhere/c.yaml", pod);
    write(".git/x.yaml", pod);
    let edits = plan_edits_for(root, &["apps", "chart"]).unwrap();
    let paths: Vec<_> = edits
        .iter()
        .map(|e| e.path.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "apps/Kustomization",
            "apps/a.yaml",
            "apps/b.yml",
            "chart/values.yaml"
        ]
    );
    let all = plan_edits_for(root, &["."]).unwrap();
    assert_eq!(
        all.len(),
        5,
        "{:?}",
        all.iter().map(|e| &e.path).collect::<Vec<_>>()
    );

    let e = plan_edits_for(root, &["../x"]).unwrap_err().to_string();
    assert!(e.contains("without \"..\""), "{e}");
    let e = plan_edits_for(root, &["missing"]).unwrap_err().to_string();
    assert!(e.contains("\"missing\": is not in the repository"), "{e}");
    write("apps/broken.yaml", "a:\n  - b\n c: d\n");
    let e = plan_edits_for(root, &["apps"]).unwrap_err().to_string();
    assert!(e.starts_with("apps/broken.yaml: line 3"), "{e}");
}

fn plan_edits_for(root: &Path, paths: &[&str]) -> Result<Vec<FileEdit>, GitopsError> {
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    crate::plan_edits(root, &paths, &policies(), &updates())
}

#[test]
fn bad_updates_are_refused() {
    let mut u = update("nginx", None, 'a');
    u.digest = "sha256:nothex".into();
    let e = validate_updates(&[u]).unwrap_err().to_string();
    assert!(e.starts_with("update for docker.io/library/nginx"), "{e}");
    let mut u = update("nginx", None, 'a');
    u.tag = Some("bad tag\n".into());
    assert!(validate_updates(&[u]).is_err());
}

#[test]
fn busy_manifests_are_edited_exactly() {
    let text = r#"%YAML 1.2
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: "db"
  annotations:
    note: "a # that is no comment"
    script: |
      image: nginx:1.27
      - image: nginx:1.27
spec:
  template:
    spec:
      containers:
      - name: db
        args: ["--image", "nginx:1.27",
               "--x"]
        env:
        - name: A
          value: >-
            folded
            text
        - {name: B, value: "b"}
        "image": &img 'nginx:1.27' # anchored
        resources: {}
      - name: second
        image:
          nginx:1.27
        command:
          - sh
...
---
# only a comment
"#;
    let new = edit(text, false).unwrap();
    let a = digest('a');
    assert_eq!(
        new,
        text.replace(
            "\"image\": &img 'nginx:1.27'",
            &format!("\"image\": &img 'nginx:1.27@{a}'")
        )
        .replace(
            "        image:\n          nginx:1.27\n",
            &format!("        image:\n          nginx:1.27@{a}\n")
        )
    );
}

/// A checkout with `apps/a.yaml`, and a directory outside it holding a
/// manifest an update would change and a file that is not YAML: read,
/// either would show (as an edit, or as an error quoting it).
struct Outside {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

const POD: &str = "kind: Pod\nspec:\n  containers:\n  - image: nginx:1.27\n";

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let outside = dir.path().join("etc");
        std::fs::create_dir_all(root.join("apps")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("apps/a.yaml"), POD).unwrap();
        std::fs::write(outside.join("pod.yaml"), POD).unwrap();
        std::fs::write(outside.join("shadow.yaml"), "root:secret: [\n").unwrap();
        Outside {
            _dir: dir,
            root,
            outside,
        }
    }

    fn link(&self, rel: &str, to: &Path) {
        std::os::unix::fs::symlink(to, self.root.join(rel)).unwrap();
    }

    /// Nothing outside changed.
    fn untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(self.outside.join("pod.yaml")).unwrap(),
            POD
        );
        assert_eq!(
            std::fs::read_to_string(self.outside.join("shadow.yaml")).unwrap(),
            "root:secret: [\n"
        );
    }
}

#[test]
fn a_configured_path_through_a_link_out_of_the_checkout_is_refused() {
    let o = Outside::new();
    o.link("deploy", &o.outside);
    for p in [
        "deploy/",
        "deploy",
        "./deploy/",
        "deploy/pod.yaml",
        "deploy/.",
    ] {
        let e = plan_edits_for(&o.root, &["apps", p]).unwrap_err();
        let shown = e.to_string();
        assert!(matches!(e, GitopsError::Path { .. }), "{p}: {shown}");
        assert_eq!(
            shown,
            format!("path {p:?}: leaves the repository (a symbolic link?)")
        );
        assert!(!shown.contains("secret"), "{shown}");
    }
    o.untouched();
    // A link to a file out of the checkout, named as it is.
    o.link("apps/evil.yaml", &o.outside.join("shadow.yaml"));
    let e = plan_edits_for(&o.root, &["apps/evil.yaml"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "path \"apps/evil.yaml\": leaves the repository (a symbolic link?)"
    );
    o.untouched();
}

#[test]
fn links_inside_the_checkout_are_named_not_followed() {
    let o = Outside::new();
    o.link("same", &o.root.join("apps"));
    for p in ["same/", "same", "same/a.yaml"] {
        let e = plan_edits_for(&o.root, &[p]).unwrap_err().to_string();
        assert!(e.starts_with(&format!("path {p:?}: ")), "{e}");
        assert!(
            e.contains("is or goes through a symbolic link; name the file or directory it points to (\"apps"),
            "{e}"
        );
    }
    o.link("gone", &o.root.join("nowhere"));
    let e = plan_edits_for(&o.root, &["gone/"]).unwrap_err().to_string();
    assert_eq!(
        e,
        "path \"gone/\": is a symbolic link to nothing in the repository"
    );
}

#[test]
fn links_found_while_walking_are_skipped() {
    let o = Outside::new();
    o.link("apps/evil.yaml", &o.outside.join("pod.yaml"));
    o.link("apps/shadow.yaml", &o.outside.join("shadow.yaml"));
    o.link("apps/etc", &o.outside);
    // Through a link the checkout itself is reached by.
    let linked_root = o._dir.path().join("checkout");
    std::os::unix::fs::symlink(&o.root, &linked_root).unwrap();
    for root in [&o.root, &linked_root] {
        for p in ["apps", "apps/", "."] {
            let edits = plan_edits_for(root, &[p]).unwrap();
            let paths: Vec<_> = edits.iter().map(|e| e.path.clone()).collect();
            assert_eq!(paths, [PathBuf::from("apps/a.yaml")], "{p}");
        }
    }
    o.untouched();
}

#[test]
fn inside_checks_each_file_before_it_is_read_or_written() {
    let o = Outside::new();
    let root = canonical_root(&o.root).unwrap();
    assert_eq!(
        inside(&root, Path::new("apps/a.yaml"), "apps/a.yaml").unwrap(),
        root.join("apps/a.yaml")
    );
    o.link("apps/evil.yaml", &o.outside.join("pod.yaml"));
    let e = inside(&root, Path::new("apps/evil.yaml"), "apps/evil.yaml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "path \"apps/evil.yaml\": leaves the repository (a symbolic link?)"
    );
    // Replaced by a link between planning and writing: refused too.
    std::fs::remove_file(o.root.join("apps/a.yaml")).unwrap();
    o.link("apps/a.yaml", &o.outside.join("pod.yaml"));
    assert!(inside(&root, Path::new("apps/a.yaml"), "apps/a.yaml").is_err());
    o.untouched();
}
