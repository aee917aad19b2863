//! Serves the browser client (`www/`: `index.html`, CSS, the built Wasm bundle).
//!
//! Only files below the configured directory, by a path made of plain segments; no
//! directory listings; every response carries a strict Content-Security-Policy.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy of every page: only our own scripts and Wasm, no
/// inline script, connections only back to this origin.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; \
base-uri 'none'; form-action 'self'";

/// Resolves `uri` to a file below `root`. `/` and unknown client routes such as
/// `/admin` map to `index.html`, so the single-page client handles them.
pub fn resolve(root: &Path, uri: &Uri) -> Option<PathBuf> {
    let rel = uri.path().trim_start_matches('/');
    let mut path = root.to_path_buf();
    for comp in Path::new(rel).components() {
        match comp {
            Component::Normal(seg) => path.push(seg),
            _ => return None,
        }
    }
    if rel.is_empty() || !rel.contains('.') {
        return Some(root.join("index.html"));
    }
    Some(path)
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// Answers a GET for a static file.
pub async fn serve_file(root: &Path, uri: &Uri) -> Response {
    let Some(path) = resolve(root, uri) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut resp = Response::new(Body::from(bytes));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&path)),
            );
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_only_below_root() {
        let root = Path::new("/srv/www");
        let r = |p: &str| resolve(root, &p.parse::<Uri>().expect("uri"));
        assert_eq!(r("/"), Some(root.join("index.html")));
        assert_eq!(r("/admin"), Some(root.join("index.html")));
        assert_eq!(
            r("/pkg/shieldcall_web.js"),
            Some(root.join("pkg/shieldcall_web.js"))
        );
        assert_eq!(r("/../etc/passwd"), None);
        assert_eq!(r("/pkg/../../x.js"), None);
    }
}
