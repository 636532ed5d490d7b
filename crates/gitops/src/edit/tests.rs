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
    }
}

fn updates() -> Vec<ImageUpdate> {
    vec![
        update("docker.io/library/nginx", Some("1.27"), 'a'),
        update("localhost:5000/app", None, 'b'),
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
    let text = "images:\n- name: localhost:5000/app\n  newTag: v1";
    assert_eq!(
        edit(text, true).unwrap(),
        format!(
            "images:\n- name: localhost:5000/app\n  newTag: v1\n  digest: {}",
            digest('b')
        )
    );
    let text = "images:\r\n  - {name: localhost:5000/app, newTag: v1}\r\n";
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
        image: nginx
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
            "        image: nginx\n",
            &format!("        image: nginx@{}\n", digest('a')),
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
  tag: "1.0" # {"$imagepolicy": "flux-system:app:tag"}
  digest: "" # {"$imagepolicy": "flux-system:app:digest"}
worker:
  image: localhost:5000/app:1.0 # {"$freshen": "localhost:5000/app"}
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
            "image: localhost:5000/app:1.0 #",
            &format!("image: localhost:5000/app:1.0@{b} #"),
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

#[test]
fn a_field_naming_no_tag_is_left_alone_when_updates_disagree() {
    let ups = vec![
        update("nginx", Some("1.27"), 'a'),
        update("nginx", Some("1.26"), 'b'),
    ];
    let text = "kind: Pod\nspec:\n  containers:\n  - image: nginx\n  - image: nginx:1.26\n";
    let (new, changes) = plan_text("p.yaml", text, false, &policies(), &ups)
        .unwrap()
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        new,
        format!(
            "kind: Pod\nspec:\n  containers:\n  - image: nginx\n  - image: nginx:1.26@{}\n",
            digest('b')
        )
    );
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
