//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand.
//! `routes::tests` checks it names every route; the integration tests check
//! real answers against its schemas and run `openapi-spec-validator` on it.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn html_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "text/html": { "schema": { "type": "string" } } }
    })
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn nullable(t: &str, description: &str) -> Value {
    json!({ "type": [t, "null"], "description": description })
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The document.
pub fn document() -> Value {
    let mut doc = inventory_document();
    merge(&mut doc["paths"], list_paths());
    merge(&mut doc["components"]["schemas"], list_schemas());
    merge(&mut doc["paths"], events_paths());
    merge(&mut doc["components"]["schemas"], events_schemas());
    merge(&mut doc["paths"], hooks_paths());
    merge(&mut doc["components"]["schemas"], hooks_schemas());
    merge(&mut doc["paths"], crate::rollouts::paths());
    merge(
        &mut doc["components"]["schemas"],
        crate::rollouts::schemas(),
    );
    merge(&mut doc["paths"], crate::rollouts::approval_paths());
    merge(
        &mut doc["components"]["schemas"],
        crate::rollouts::approval_schemas(),
    );
    doc
}

/// Webhook receivers, metrics and readiness.
fn hooks_paths() -> Value {
    json!({
        "/hooks/{kind}/{key}": {
            "parameters": [
                { "name": "kind", "in": "path", "required": true, "description": "The sender's format.", "schema": { "type": "string", "enum": ["dockerhub", "registry", "harbor", "generic"] } },
                { "name": "key", "in": "path", "required": true, "description": "The receiver's secret key (`receivers.<name>.key`).", "schema": { "type": "string" } }
            ],
            "post": {
                "tags": ["hooks"],
                "operationId": "receiveHook",
                "summary": "A registry webhook: Docker Hub, Distribution notifications, Harbor (default or CloudEvents), or a generic CloudEvent / {ref, digest}",
                "description": "Needs the receiver's key in the path and, when configured, `Authorization: Bearer <token>` or a `X-Freshen-Signature`/`X-Hub-Signature-256` HMAC of the body. Each pushed tag is checked like a poll: a digest already known is no new event.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
                "responses": {
                    "200": json_response("What each pushed tag set off.", "HookResult"),
                    "400": r("BadRequest"),
                    "401": error_response("Unknown key, missing or wrong token or signature (always the same answer)."),
                    "404": error_response("No such receiver kind."),
                    "413": r("PayloadTooLarge"),
                    "502": json_response("A pushed tag could not be read from its registry; retry.", "HookResult")
                }
            }
        },
        "/metrics": {
            "get": {
                "tags": ["service"],
                "operationId": "metrics",
                "summary": "Prometheus metrics of the whole pipeline (checks, registries, outbox, scans, policy, rebuilds, roll-outs, webhooks); the README lists them",
                "responses": { "200": { "description": "The Prometheus text exposition.", "content": { "text/plain": { "schema": { "type": "string" } } } } }
            }
        },
        "/readyz": {
            "get": {
                "tags": ["service"],
                "operationId": "ready",
                "summary": "Readiness: the database answers a trivial query within 2 s and holds every migration",
                "responses": {
                    "200": { "description": "Ready.", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["status"],
                        "properties": { "status": { "type": "string", "enum": ["ready"] } }
                    } } } },
                    "503": { "description": "Not ready, and why (the database is unreachable, slow, or not migrated).", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["status", "reason"],
                        "properties": { "status": { "type": "string", "enum": ["not ready"] }, "reason": { "type": "string", "description": "Why: the database's error, a timeout, or the migrations missing." } }
                    } } } }
                }
            }
        }
    })
}

fn hooks_schemas() -> Value {
    json!({
        "HookResult": {
            "type": "object",
            "required": ["receiver", "pushes", "skipped"],
            "properties": {
                "receiver": { "type": "string" },
                "pushes": { "type": "array", "items": {
                    "type": "object",
                    "required": ["reference", "outcome"],
                    "properties": {
                        "reference": { "type": "string" },
                        "pushed_digest": { "type": "string", "description": "The digest the payload named." },
                        "digest": { "type": "string", "description": "The tag's digest as read from the registry." },
                        "outcome": { "type": "string", "enum": ["fired", "quiet", "unchanged", "ignored", "failed"] },
                        "event_id": { "type": "string" },
                        "reason": { "type": "string" }
                    }
                } },
                "scans": { "type": "array", "items": { "type": "object" }, "description": "Harbor scans completed, and what was imported." },
                "skipped": { "type": "array", "items": { "type": "string" }, "description": "Payload items not acted on, with why." },
                "callback": { "type": "string", "description": "Docker Hub: `queued`, `posted <state>`, or why not." }
            }
        }
    })
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// The inventory and vulnerability parts.
fn inventory_document() -> Value {
    let ref_param = json!({ "$ref": "#/components/parameters/ref" });
    let registration_body = json!({
        "required": true,
        "content": { "application/json": { "schema": schema_ref("Registration") } }
    });
    let write_errors = |v: &mut serde_json::Map<String, Value>| {
        v.insert("400".into(), r("BadRequest"));
        v.insert("401".into(), r("Unauthorized"));
        v.insert("403".into(), r("Forbidden"));
        v.insert("500".into(), r("InternalError"));
    };
    let mut post_responses = serde_json::Map::new();
    post_responses.insert(
        "201".into(),
        json!({
            "description": "Registered; `Location` names the image.",
            "headers": { "Location": { "description": "`/images/{ref}` of the new image, URL-encoded.", "schema": { "type": "string" } } },
            "content": { "application/json": { "schema": schema_ref("ImageView") } }
        }),
    );
    write_errors(&mut post_responses);
    post_responses.insert("409".into(), r("Conflict"));
    post_responses.insert("413".into(), r("PayloadTooLarge"));
    let mut put_responses = serde_json::Map::new();
    put_responses.insert(
        "200".into(),
        json_response("Registered or replaced.", "ImageView"),
    );
    write_errors(&mut put_responses);
    put_responses.insert("413".into(), r("PayloadTooLarge"));
    let mut delete_responses = serde_json::Map::new();
    delete_responses.insert("204".into(), json!({ "description": "Removed." }));
    write_errors(&mut delete_responses);
    delete_responses.insert("404".into(), r("NotFound"));
    let security = json!([{ "bearer": [] }]);

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "freshen inventory API",
            "version": env!("CARGO_PKG_VERSION"),
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
            "description": "What every image holds and is built on.\n\n\
                Image references in paths are URL-encoded (`localhost%3A5000%2Fapp%3A1`, \
                `app%40sha256%3A...`); raw slashes are accepted too, except for a repository \
                whose last path component is `packages` or `children` (encode its slashes). \
                References are normalised as the docker CLI does (`debian` is \
                `docker.io/library/debian:latest`).\n\n\
                Reads are open to anyone who can reach the server: bind it to loopback \
                (the default) or put it behind an authenticating proxy. Writes need \
                `Authorization: Bearer <token>` with a token from `server.write_tokens`; \
                without tokens configured they are refused with 403.\n\n\
                Errors are `{\"error\": \"<reason>\"}` with the status code."
        },
        "tags": [
            { "name": "images", "description": "Images, their packages and what is built on them." },
            { "name": "packages", "description": "Who holds a package." },
            { "name": "vulnerabilities", "description": "Findings and the images a vulnerability affects." },
            { "name": "events", "description": "Change events of watched tags, and the policy decisions made on them." },
            { "name": "rollouts", "description": "Kubernetes workloads and GitOps repositories moved to rebuilt digests." },
            { "name": "approvals", "description": "Cascades and roll-outs held for a person's decision." },
            { "name": "service", "description": "Health, this document, the HTML page." }
        ],
        "paths": {
            "/packages/{name}": {
                "get": {
                    "tags": ["packages"],
                    "operationId": "findPackage",
                    "summary": "Every version of a package and the images holding it",
                    "description": "Matches the binary or the source package name. An unknown name gives an empty list.",
                    "parameters": [
                        { "name": "name", "in": "path", "required": true, "description": "Package name, URL-encoded (Go modules and npm scopes hold slashes).", "schema": { "type": "string" } },
                        { "name": "ecosystem", "in": "query", "required": false, "description": "Only this ecosystem (`deb`, `apk`, `rpm`, `pypi`, `npm`, `go`, `cargo`, `generic`); empty means any.", "schema": { "type": "string" } },
                        { "name": "version", "in": "query", "required": false, "description": "Only this exact version; empty means any.", "schema": { "type": "string" } }
                    ],
                    "responses": {
                        "200": { "description": "Versions found, each with its holders.", "content": { "application/json": { "schema": { "type": "array", "items": schema_ref("PackageVersion") } } } },
                        "400": r("BadRequest"),
                        "500": r("InternalError")
                    }
                }
            },
            "/images/{ref}": {
                "parameters": [ref_param],
                "get": {
                    "tags": ["images"],
                    "operationId": "showImage",
                    "summary": "An image: per platform its digest, OS, base edges and when it was scanned",
                    "responses": {
                        "200": json_response("The image.", "ImageView"),
                        "400": r("BadRequest"),
                        "404": r("NotFound"),
                        "500": r("InternalError")
                    }
                },
                "post": {
                    "tags": ["images"],
                    "operationId": "registerImage",
                    "summary": "Register an image by hand (a build pipeline reporting what it built)",
                    "description": "The reference must carry a tag. Refused with 409 when the reference is already known: use PUT to replace.",
                    "security": security.clone(),
                    "requestBody": registration_body.clone(),
                    "responses": Value::Object(post_responses)
                },
                "put": {
                    "tags": ["images"],
                    "operationId": "putImage",
                    "summary": "Register or replace an image",
                    "description": "Replaces the whole record of the tag: platform, base and packages.",
                    "security": security.clone(),
                    "requestBody": registration_body,
                    "responses": Value::Object(put_responses)
                },
                "delete": {
                    "tags": ["images"],
                    "operationId": "deleteImage",
                    "summary": "Remove a tag from the inventory (and the images nothing else points at)",
                    "security": security,
                    "responses": Value::Object(delete_responses)
                }
            },
            "/images/{ref}/packages": {
                "parameters": [ref_param],
                "get": {
                    "tags": ["images"],
                    "operationId": "imagePackages",
                    "summary": "The packages of each platform of an image",
                    "responses": {
                        "200": json_response("Packages by platform.", "ImagePackages"),
                        "400": r("BadRequest"),
                        "404": r("NotFound"),
                        "500": r("InternalError")
                    }
                }
            },
            "/images/{ref}/children": {
                "parameters": [ref_param],
                "get": {
                    "tags": ["images"],
                    "operationId": "imageChildren",
                    "summary": "Images built on an image",
                    "description": "Direct children, or with `recursive=true` every descendant (breadth first, each once) with its depth.",
                    "parameters": [
                        { "name": "recursive", "in": "query", "required": false, "description": "All descendants, not only direct children.", "schema": { "type": "boolean", "default": false } }
                    ],
                    "responses": {
                        "200": json_response("The children.", "Children"),
                        "400": r("BadRequest"),
                        "404": r("NotFound"),
                        "500": r("InternalError")
                    }
                }
            },
            "/images/{ref}/vulnerabilities": {
                "parameters": [ref_param],
                "get": {
                    "tags": ["vulnerabilities"],
                    "operationId": "imageVulnerabilities",
                    "summary": "The vulnerabilities of each platform of an image",
                    "description": "Its packages matched against the imported OSV records (distribution records only for the image's release and on source packages), merged with the findings of the Trivy and Grype reports imported for the image: one finding per vulnerability (aliases merged, named by its CVE) and package, with its sources and the highest severity.",
                    "responses": {
                        "200": json_response("Findings by platform.", "ImageVulnerabilities"),
                        "400": r("BadRequest"),
                        "404": r("NotFound"),
                        "500": r("InternalError")
                    }
                }
            },
            "/vulnerabilities/{id}/images": {
                "parameters": [{ "name": "id", "in": "path", "required": true, "description": "A vulnerability id or alias: CVE-2023-5363, DSA-5532-1, GHSA-...", "schema": { "type": "string" } }],
                "get": {
                    "tags": ["vulnerabilities"],
                    "operationId": "vulnerabilityImages",
                    "summary": "Every image, fleet-wide, affected by a vulnerability",
                    "responses": {
                        "200": json_response("The affected images.", "AffectedImages"),
                        "400": r("BadRequest"),
                        "500": r("InternalError")
                    }
                }
            },
            "/healthz": {
                "get": {
                    "tags": ["service"],
                    "operationId": "health",
                    "summary": "Liveness: the process answers (no I/O)",
                    "responses": { "200": json_response("The server is up.", "Health") }
                }
            },
            "/openapi.json": {
                "get": {
                    "tags": ["service"],
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": { "200": { "description": "The OpenAPI document.", "content": { "application/json": { "schema": { "type": "object" } } } } }
                }
            },
            "/": {
                "get": {
                    "tags": ["service"],
                    "operationId": "indexPage",
                    "summary": "HTML page: the inventory's size and lookup forms",
                    "responses": { "200": html_response("The page."), "500": html_response("The store failed.") }
                }
            },
            "/ui/packages": {
                "get": {
                    "tags": ["service"],
                    "operationId": "packagesPage",
                    "summary": "HTML page: who holds a package",
                    "parameters": [
                        { "name": "name", "in": "query", "required": true, "schema": { "type": "string" } },
                        { "name": "ecosystem", "in": "query", "required": false, "schema": { "type": "string" } },
                        { "name": "version", "in": "query", "required": false, "schema": { "type": "string" } }
                    ],
                    "responses": { "200": html_response("The holders."), "400": html_response("No name given."), "500": html_response("The store failed.") }
                }
            },
            "/ui/children": {
                "get": {
                    "tags": ["service"],
                    "operationId": "childrenPage",
                    "summary": "HTML page: what is built on an image",
                    "parameters": [
                        { "name": "ref", "in": "query", "required": true, "schema": { "type": "string" } },
                        { "name": "recursive", "in": "query", "required": false, "schema": { "type": "string", "enum": ["true", "on", "1"] } }
                    ],
                    "responses": { "200": html_response("The children."), "400": html_response("A bad reference."), "404": html_response("Unknown image."), "500": html_response("The store failed.") }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A token from `server.write_tokens`." }
            },
            "parameters": {
                "ref": {
                    "name": "ref",
                    "in": "path",
                    "required": true,
                    "description": "Image reference `[registry/]repository[:tag][@digest]`, URL-encoded.",
                    "schema": { "type": "string" },
                    "examples": {
                        "tag": { "value": "localhost%3A5000%2Fapp%3A1" },
                        "digest": { "value": "app%40sha256%3A4c1e0f2b7a9d3e5f6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f" }
                    }
                }
            },
            "responses": {
                "BadRequest": error_response("A bad reference, query string or body; the reason names it."),
                "Unauthorized": {
                    "description": "No bearer token, or not a valid one.",
                    "headers": { "WWW-Authenticate": { "description": "`Bearer realm=\"freshen\"`", "schema": { "type": "string" } } },
                    "content": { "application/json": { "schema": schema_ref("Error") } }
                },
                "Forbidden": error_response("Writes are disabled: no `server.write_tokens` configured."),
                "NotFound": error_response("The image is not in the inventory."),
                "Conflict": error_response("The reference is already registered (use PUT)."),
                "PayloadTooLarge": error_response("The body is larger than `server.max_body_bytes`."),
                "InternalError": error_response("The store failed; the server log has the detail.")
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": string("One line saying what was wrong.") }
                },
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "properties": { "status": { "type": "string", "enum": ["ok"] } }
                },
                "LineageEdge": {
                    "type": "object",
                    "description": "An image -> base edge and how it was learned.",
                    "required": ["evidence", "base_reference", "base_digest", "confidence", "detail", "recorded_at"],
                    "properties": {
                        "evidence": string("`manual`, `annotation`, `dockerfile` or `layer-prefix`."),
                        "base_reference": nullable("string", "The base as `registry/repository:tag`, when known."),
                        "base_digest": nullable("string", "The base manifest the image was built on, when known."),
                        "confidence": { "type": "integer", "minimum": 0, "maximum": 100 },
                        "detail": nullable("string", "Evidence detail: a Dockerfile path and line, a prefix length."),
                        "recorded_at": { "type": "string", "format": "date-time" }
                    }
                },
                "PlatformView": {
                    "type": "object",
                    "required": ["platform", "digest", "index_digest", "os", "scanned_at", "source", "packages", "base"],
                    "properties": {
                        "platform": string("`os/arch[/variant]`."),
                        "digest": string("The platform manifest's digest (`manual:...` for a registration without one)."),
                        "index_digest": nullable("string", "The tag's own digest when it points at an index."),
                        "os": nullable("string", "The distribution (`Debian:12`) or os-release ID."),
                        "scanned_at": { "type": "string", "format": "date-time" },
                        "source": string("`scan` or `manual`."),
                        "packages": { "type": "integer", "minimum": 0, "description": "How many packages it holds." },
                        "base": { "type": "array", "items": schema_ref("LineageEdge"), "description": "Base edges, strongest evidence first." }
                    }
                },
                "ImageView": {
                    "type": "object",
                    "required": ["reference", "platforms"],
                    "properties": {
                        "reference": string("The normalised reference."),
                        "platforms": { "type": "array", "items": schema_ref("PlatformView") }
                    }
                },
                "PackageRecord": {
                    "type": "object",
                    "required": ["ecosystem", "name", "version", "arch", "source_name", "source_version", "purl", "location", "layer"],
                    "properties": {
                        "ecosystem": string("`deb`, `apk`, `rpm`, `pypi`, `npm`, `go`, `cargo`, `generic`."),
                        "name": { "type": "string" },
                        "version": { "type": "string" },
                        "arch": nullable("string", "Architecture, where the ecosystem has one."),
                        "source_name": nullable("string", "The source package (dpkg `Source`, apk origin, source rpm)."),
                        "source_version": nullable("string", "The source package's version."),
                        "purl": string("Package URL."),
                        "location": string("Where it was found: a package database, a binary, or `registered`."),
                        "layer": nullable("string", "The layer that introduced it.")
                    }
                },
                "ImagePackages": {
                    "type": "object",
                    "required": ["reference", "platforms"],
                    "properties": {
                        "reference": string("The normalised reference."),
                        "platforms": {
                            "type": "object",
                            "description": "Packages keyed by platform (`linux/amd64`).",
                            "additionalProperties": { "type": "array", "items": schema_ref("PackageRecord") }
                        }
                    }
                },
                "ChildView": {
                    "type": "object",
                    "required": ["depth", "digest", "platform", "references", "parent", "evidence", "confidence", "base_digest", "outdated"],
                    "properties": {
                        "depth": { "type": "integer", "minimum": 1, "description": "1 for direct children, 2 for their children, ..." },
                        "digest": { "type": "string" },
                        "platform": { "type": "string" },
                        "references": { "type": "array", "items": { "type": "string" }, "description": "Tags pointing at it." },
                        "parent": string("The parent it was found under (a reference, or digests)."),
                        "evidence": { "type": "string" },
                        "confidence": { "type": "integer", "minimum": 0, "maximum": 100 },
                        "base_digest": nullable("string", "The parent digest it was built on, when known."),
                        "outdated": { "type": "boolean", "description": "Built on a digest its base tag no longer points at." }
                    }
                },
                "Children": {
                    "type": "object",
                    "required": ["reference", "recursive", "children"],
                    "properties": {
                        "reference": string("The normalised reference."),
                        "recursive": { "type": "boolean" },
                        "children": { "type": "array", "items": schema_ref("ChildView") }
                    }
                },
                "Finding": {
                    "type": "object",
                    "required": ["id", "aliases", "matched", "package", "version", "package_type", "severity", "sources"],
                    "properties": {
                        "id": string("The vulnerability: its CVE when one is among the merged ids."),
                        "aliases": { "type": "array", "items": { "type": "string" } },
                        "matched": { "type": "array", "items": { "type": "string" }, "description": "The record ids (or scanner-reported ids) that matched." },
                        "package": { "type": "string" },
                        "version": { "type": "string" },
                        "package_type": { "type": "string" },
                        "fixed": { "type": ["string", "null"], "description": "The lowest version that fixes it." },
                        "severity": { "type": "string", "enum": ["unknown", "negligible", "low", "medium", "high", "critical"] },
                        "score": { "type": ["number", "null"], "description": "CVSS base score." },
                        "summary": { "type": ["string", "null"] },
                        "sources": { "type": "array", "items": { "type": "string", "enum": ["osv", "trivy", "grype", "harbor"] }, "description": "Where it came from: OSV records matched against the image's packages, and the scanner reports imported for the image (`freshen vulns import`). One finding per vulnerability and package, whatever its sources." }
                    }
                },
                "ImageVulnerabilities": {
                    "type": "object",
                    "required": ["reference", "platforms"],
                    "properties": {
                        "reference": string("The normalised reference."),
                        "platforms": { "type": "array", "items": {
                            "type": "object",
                            "required": ["platform", "digest", "findings", "counts"],
                            "properties": {
                                "platform": { "type": "string" },
                                "digest": { "type": "string" },
                                "os": { "type": ["string", "null"] },
                                "findings": { "type": "array", "items": schema_ref("Finding") },
                                "counts": { "type": "object", "additionalProperties": { "type": "integer" } }
                            }
                        } }
                    }
                },
                "AffectedImages": {
                    "type": "object",
                    "required": ["id", "images"],
                    "properties": {
                        "id": { "type": "string" },
                        "images": { "type": "array", "items": {
                            "type": "object",
                            "required": ["digest", "platform", "references", "findings"],
                            "properties": {
                                "digest": { "type": "string" },
                                "platform": { "type": "string" },
                                "references": { "type": "array", "items": { "type": "string" } },
                                "findings": { "type": "array", "items": schema_ref("Finding") }
                            }
                        } }
                    }
                },
                "Holder": {
                    "type": "object",
                    "required": ["digest", "platform", "references"],
                    "properties": {
                        "digest": { "type": "string" },
                        "platform": { "type": "string" },
                        "references": { "type": "array", "items": { "type": "string" } }
                    }
                },
                "PackageVersion": {
                    "type": "object",
                    "required": ["ecosystem", "name", "version", "source_name", "purl", "images"],
                    "properties": {
                        "ecosystem": { "type": "string" },
                        "name": { "type": "string" },
                        "version": { "type": "string" },
                        "source_name": nullable("string", "The source package."),
                        "purl": { "type": "string" },
                        "images": { "type": "array", "items": schema_ref("Holder") }
                    }
                },
                "Registration": {
                    "type": "object",
                    "description": "What a build pipeline reports. Unknown fields are refused.",
                    "additionalProperties": false,
                    "properties": {
                        "digest": nullable("string", "The manifest digest; when absent a stable id prefixed `manual:` is derived."),
                        "platform": nullable("string", "`os/arch[/variant]`, default `linux/amd64`."),
                        "base": nullable("string", "The base image reference (`debian:bookworm`)."),
                        "base_digest": nullable("string", "The base manifest digest it was built on."),
                        "packages": { "type": "array", "items": schema_ref("RegisteredPackage"), "default": [] }
                    }
                },
                "RegisteredPackage": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "version"],
                    "properties": {
                        "name": { "type": "string", "minLength": 1 },
                        "version": { "type": "string", "minLength": 1 },
                        "ecosystem": nullable("string", "Default `generic`."),
                        "source_name": nullable("string", "The source package."),
                        "source_version": nullable("string", "The source package's version."),
                        "purl": nullable("string", "Default `pkg:<ecosystem>/<name>@<version>`.")
                    }
                }
            }
        }
    })
}

/// The paging parameters every list takes.
fn page_parameters(default_limit: u32) -> [Value; 2] {
    [
        json!({ "name": "limit", "in": "query", "required": false, "description": format!("At most this many (1 to 1000, default {default_limit})."), "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }),
        json!({ "name": "offset", "in": "query", "required": false, "description": "Skip this many first (default 0); a full page's `Link: <…>; rel=\"next\"` header names the next one.", "schema": { "type": "integer", "minimum": 0 } }),
    ]
}

/// `GET /images`.
fn list_paths() -> Value {
    let [limit, offset] = page_parameters(50);
    json!({
        "/images": {
            "get": {
                "tags": ["inventory"],
                "operationId": "listImages",
                "summary": "The inventory's tags, one row per platform, sorted by reference, a page at a time",
                "parameters": [
                    { "name": "search", "in": "query", "required": false, "description": "Only references containing this text (any case).", "schema": { "type": "string" } },
                    { "name": "outdated", "in": "query", "required": false, "description": "Only images built on a digest their base tag no longer points at.", "schema": { "type": "boolean" } },
                    { "name": "vulnerable", "in": "query", "required": false, "description": "Only images a policy acts on now for their vulnerabilities.", "schema": { "type": "boolean" } },
                    limit,
                    offset
                ],
                "responses": {
                    "200": json_response("One page of images.", "ImagePage"),
                    "400": r("BadRequest"),
                    "500": r("InternalError")
                }
            }
        }
    })
}

/// The schemas of `GET /images`.
fn list_schemas() -> Value {
    json!({
        "ImagePage": {
            "type": "object",
            "required": ["items", "total", "offset", "next"],
            "properties": {
                "items": { "type": "array", "items": schema_ref("ImageSummary") },
                "total": { "type": "integer", "description": "Rows the filter keeps in all." },
                "offset": { "type": "integer" },
                "next": { "type": ["integer", "null"], "description": "The next page's offset, when there is one." }
            }
        },
        "ImageSummary": {
            "type": "object",
            "required": ["reference", "platform", "digest", "os", "packages", "base", "outdated", "vulnerable", "source", "scanned_at"],
            "properties": {
                "reference": { "type": "string" },
                "platform": { "type": "string" },
                "digest": { "type": "string" },
                "os": { "type": ["string", "null"], "description": "os-release ID and VERSION_ID." },
                "packages": { "type": "integer" },
                "base": { "type": ["string", "null"], "description": "The base of its strongest lineage edge." },
                "outdated": { "type": "boolean" },
                "vulnerable": { "type": "boolean" },
                "source": { "type": "string", "enum": ["scan", "manual"] },
                "scanned_at": { "type": "string", "format": "date-time" }
            }
        }
    })
}

/// `/events`, `/events/{id}`, `/decisions`.
fn events_paths() -> Value {
    json!({
            "/events": {
                "get": {
                    "tags": ["events"],
                    "operationId": "listEvents",
                    "summary": "Change events, newest first, with what the policy said of each",
                    "parameters": [
                        { "name": "reference", "in": "query", "required": false, "description": "Only this watched tag.", "schema": { "type": "string" } },
                        { "name": "limit", "in": "query", "required": false, "description": "At most this many (default 50).", "schema": { "type": "integer", "minimum": 1 } }
                    ],
                    "responses": {
                        "200": { "description": "The events.", "content": { "application/json": { "schema": { "type": "array", "items": schema_ref("ChangeEvent") } } } },
                        "400": r("BadRequest"),
                        "500": r("InternalError")
                    }
                }
            },
            "/events/{id}": {
                "parameters": [{ "name": "id", "in": "path", "required": true, "description": "The event id (UUID v7).", "schema": { "type": "string" } }],
                "get": {
                    "tags": ["events"],
                    "operationId": "getEvent",
                    "summary": "One change event and the policy decisions made on it",
                    "responses": {
                        "200": json_response("The event.", "EventDetail"),
                        "400": r("BadRequest"),
                        "404": r("NotFound"),
                        "500": r("InternalError")
                    }
                }
            },
            "/decisions": {
                "get": {
                    "tags": ["events"],
                    "operationId": "listDecisions",
                    "summary": "Stored policy decisions, newest first",
                    "parameters": [
                        { "name": "subject", "in": "query", "required": false, "description": "Only decisions on this image reference.", "schema": { "type": "string" } },
                        { "name": "event", "in": "query", "required": false, "description": "Only decisions on this change event.", "schema": { "type": "string" } },
                        { "name": "limit", "in": "query", "required": false, "description": "At most this many (default 50).", "schema": { "type": "integer", "minimum": 1 } }
                    ],
                    "responses": {
                        "200": { "description": "The decisions.", "content": { "application/json": { "schema": { "type": "array", "items": schema_ref("Decision") } } } },
                        "400": r("BadRequest"),
                        "500": r("InternalError")
                    }
                }
            }
    })
}

/// The schemas of the events paths.
fn events_schemas() -> Value {
    json!({
                "ChangeEvent": {
                    "type": "object",
                    "required": ["id", "reference", "old_digest", "new_digest", "changes", "source", "observed_at"],
                    "properties": {
                        "id": { "type": "string", "description": "UUID v7; receivers dedupe on it." },
                        "reference": { "type": "string" },
                        "old_digest": nullable("string", "The tag's previous digest."),
                        "new_digest": { "type": "string" },
                        "changes": { "type": "array", "items": {
                            "type": "object",
                            "required": ["platform", "old_digest", "new_digest"],
                            "properties": {
                                "platform": { "type": "string" },
                                "old_digest": nullable("string", "The platform's previous digest; null when a pushed tag was seen first."),
                                "new_digest": { "type": "string" }
                            }
                        } },
                        "source": { "type": "string", "description": "What saw it: `poll`, `webhook:<kind>`, or `vulnerability` (new vulnerability data made the image's policy act; nothing moved, `changes` is empty)." },
                        "observed_at": { "type": "string", "format": "date-time" },
                        "decision": {
                            "type": "object",
                            "description": "What the policy said, when one judged the change; absent: it fired.",
                            "required": ["act", "reason"],
                            "properties": { "act": { "type": "boolean" }, "reason": { "type": "string" } }
                        },
                        "vulnerability": {
                            "type": "object",
                            "description": "With source `vulnerability`: the policy, the data it judged and the findings that made it act.",
                            "required": ["policy", "policy_version", "snapshot", "platform", "findings"],
                            "properties": {
                                "policy": { "type": "string" },
                                "policy_version": { "type": "string" },
                                "snapshot": { "type": "object", "description": "The data judged: `vuln_import` (the latest import's id) and `records`." },
                                "platform": { "type": "string" },
                                "findings": { "type": "array", "items": { "type": "object" }, "description": "The counted findings, as `GET /api/v1/images/{ref}/vulnerabilities` gives them." }
                            }
                        }
                    }
                },
                "Decision": {
                    "type": "object",
                    "required": ["id", "subject", "image_digest", "event_id", "policy", "policy_version", "snapshot", "act", "reason", "counts", "decided_at"],
                    "properties": {
                        "id": { "type": "string" },
                        "subject": { "type": "string", "description": "The image reference decided on." },
                        "image_digest": nullable("string", "Its manifest digest."),
                        "event_id": nullable("string", "The change event decided on (watcher decisions)."),
                        "policy": { "type": "string" },
                        "policy_version": { "type": "string", "description": "A digest of the policy's rules." },
                        "snapshot": { "type": "object", "description": "The vulnerability data it was made on." },
                        "act": { "type": "boolean" },
                        "reason": { "type": "string" },
                        "counts": { "type": "object", "additionalProperties": { "type": "integer" } },
                        "decided_at": { "type": "string", "format": "date-time" }
                    }
                },
                "EventDetail": {
                    "type": "object",
                    "required": ["event", "decisions"],
                    "properties": {
                        "event": schema_ref("ChangeEvent"),
                        "decisions": { "type": "array", "items": schema_ref("Decision") }
                    }
                }
    })
}
