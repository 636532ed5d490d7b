//! A small HTML front page: plain GET forms, no script, no external assets.
//! Every piece of data goes through [`esc`].

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::routes::{AppState, image_path, non_empty};

/// HTML-escapes text for element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}\
code{font-size:.9em}form{margin:1em 0}";

/// A page; `body` must already be escaped.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} · freshen</title><style>{STYLE}</style></head><body>\
         <p><a href=\"/\">freshen inventory</a></p>{body}</body></html>\n",
        esc(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

fn error_page(e: ApiError) -> Response {
    let body = format!("<h1>Error</h1><p>{}</p>", esc(&e.message));
    page(e.status, "error", &body)
}

fn forms(name: &str, reference: &str, recursive: bool) -> String {
    format!(
        "<form method=\"get\" action=\"/ui/packages\"><fieldset><legend>Who holds a package?</legend>\
         <label>name <input name=\"name\" required value=\"{}\"></label> \
         <label>ecosystem <input name=\"ecosystem\" placeholder=\"deb, apk, rpm, pypi...\"></label> \
         <label>version <input name=\"version\"></label> \
         <button>Look up</button></fieldset></form>\
         <form method=\"get\" action=\"/ui/children\"><fieldset><legend>What is built on an image?</legend>\
         <label>image <input name=\"ref\" required size=\"40\" placeholder=\"debian:bookworm\" value=\"{}\"></label> \
         <label><input type=\"checkbox\" name=\"recursive\" value=\"true\"{}> all descendants</label> \
         <button>Look up</button></fieldset></form>",
        esc(name),
        esc(reference),
        if recursive { " checked" } else { "" }
    )
}

/// `GET /`.
pub(crate) async fn index(State(st): State<AppState>) -> Response {
    let count = match st.app.image_count().await {
        Ok(n) => n,
        Err(e) => return error_page(e.into()),
    };
    let body = format!(
        "<h1>freshen inventory</h1><p>{count} image{} in the inventory.</p>{}\
         <p>The JSON API is described by <a href=\"/openapi.json\">/openapi.json</a>. \
         Reads are open to anyone who can reach this server; writes need a bearer token.</p>",
        if count == 1 { "" } else { "s" },
        forms("", "", true)
    );
    page(StatusCode::OK, "inventory", &body)
}

#[derive(Deserialize)]
pub(crate) struct UiPackageParams {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ecosystem: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

fn holders_cell(references: &[String], digest: &str) -> String {
    if references.is_empty() {
        return format!("<code>{}</code>", esc(digest));
    }
    let mut s = String::new();
    for r in references {
        let _ = write!(s, "<a href=\"{}\">{}</a><br>", esc(&image_path(r)), esc(r));
    }
    s
}

/// `GET /ui/packages?name=&ecosystem=&version=`.
pub(crate) async fn packages(
    State(st): State<AppState>,
    params: Result<Query<UiPackageParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return error_page(ApiError::bad_request("bad query string"));
    };
    let Some(name) = non_empty(&p.name) else {
        return error_page(ApiError::bad_request("name a package to look up"));
    };
    let versions = match st
        .app
        .packages(name, non_empty(&p.ecosystem), non_empty(&p.version))
        .await
    {
        Ok(v) => v,
        Err(e) => return error_page(e.into()),
    };
    let mut body = format!("<h1>Package {}</h1>", esc(name));
    if versions.is_empty() {
        body.push_str("<p>No image in the inventory holds it.</p>");
    } else {
        body.push_str(
            "<table><tr><th>ecosystem</th><th>name</th><th>version</th><th>source</th><th>images</th><th>platform</th></tr>",
        );
        for v in &versions {
            for h in &v.images {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&v.ecosystem),
                    esc(&v.name),
                    esc(&v.version),
                    esc(v.source_name.as_deref().unwrap_or("")),
                    holders_cell(&h.references, &h.digest),
                    esc(&h.platform),
                );
            }
        }
        body.push_str("</table>");
    }
    body.push_str(&forms(name, "", true));
    page(StatusCode::OK, name, &body)
}

#[derive(Deserialize)]
pub(crate) struct UiChildrenParams {
    #[serde(default, rename = "ref")]
    reference: Option<String>,
    #[serde(default)]
    recursive: Option<String>,
}

/// `GET /ui/children?ref=&recursive=true`.
pub(crate) async fn children(
    State(st): State<AppState>,
    params: Result<Query<UiChildrenParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return error_page(ApiError::bad_request("bad query string"));
    };
    let Some(raw) = non_empty(&p.reference) else {
        return error_page(ApiError::bad_request("name an image to look up"));
    };
    let recursive = matches!(p.recursive.as_deref(), Some("true" | "on" | "1"));
    let r = match st.app.reference(raw) {
        Ok(r) => r,
        Err(e) => return error_page(e.into()),
    };
    let children = match st.app.children(&r.to_string(), recursive).await {
        Ok(c) => c,
        Err(e) => return error_page(e.into()),
    };
    let title = r.to_string();
    let mut body = format!(
        "<h1>Built on <a href=\"{}\">{}</a></h1>",
        esc(&image_path(&title)),
        esc(&title)
    );
    if children.is_empty() {
        body.push_str("<p>Nothing in the inventory is built on it.</p>");
    } else {
        body.push_str(
            "<table><tr><th>depth</th><th>image</th><th>platform</th><th>built on</th><th>evidence</th><th>outdated base</th></tr>",
        );
        for c in &children {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({}%)</td><td>{}</td></tr>",
                c.depth,
                holders_cell(&c.references, &c.digest),
                esc(&c.platform),
                esc(&c.parent),
                esc(&c.evidence),
                c.confidence,
                if c.outdated { "yes" } else { "no" },
            );
        }
        body.push_str("</table>");
    }
    body.push_str(&forms("", raw, recursive));
    page(StatusCode::OK, &title, &body)
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes() {
        assert_eq!(
            esc(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
