//! ICE servers for a client, with TURN credentials in coturn's REST scheme:
//! user name `expiry:user` (Unix seconds), password base64(HMAC-SHA1(secret, name)).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use shieldcall_proto::IceServer;

use crate::config::IceConfig;

/// The servers for `user` at `now` (Unix seconds). TURN credentials expire after
/// `turn_ttl`, and never after `session_expires_at`: coturn's REST credentials
/// cannot be revoked, so they must not outlive the session that got them.
pub fn ice_servers(
    ice: &IceConfig,
    user: &str,
    now: i64,
    session_expires_at: i64,
) -> Vec<IceServer> {
    let mut out = Vec::new();
    if !ice.stun_urls.is_empty() {
        out.push(IceServer {
            urls: ice.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    if !ice.turn_urls.is_empty() {
        let (username, credential) = match &ice.turn_secret {
            Some(secret) => {
                let ttl = i64::try_from(ice.turn_ttl.as_secs()).unwrap_or(i64::MAX);
                let expiry = now.saturating_add(ttl).min(session_expires_at);
                let name = format!("{expiry}:{user}");
                (Some(name.clone()), Some(credential(secret, &name)))
            }
            None => (None, None),
        };
        out.push(IceServer {
            urls: ice.turn_urls.clone(),
            username,
            credential,
        });
    }
    out
}

/// base64(HMAC-SHA1(secret, username)).
pub fn credential(secret: &str, username: &str) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).map(|mut m| {
        m.update(username.as_bytes());
        m.finalize().into_bytes()
    });
    match mac {
        Ok(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn coturn_rest_credentials() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        assert_eq!(
            credential("Jefe", "what do ya want for nothing?"),
            base64::engine::general_purpose::STANDARD.encode([
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ])
        );
        let ice = IceConfig {
            stun_urls: vec!["stun:s.test:3478".into()],
            turn_urls: vec!["turn:t.test:3478".into()],
            turn_secret: Some("s3cret".into()),
            turn_ttl: Duration::from_secs(3600),
        };
        let servers = ice_servers(&ice, "ann@a.test", 1000, i64::MAX);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].username.as_deref(), Some("4600:ann@a.test"));
        assert_eq!(
            servers[1].credential.as_deref(),
            Some(credential("s3cret", "4600:ann@a.test").as_str())
        );
        // Never past the session's end.
        let servers = ice_servers(&ice, "ann@a.test", 1000, 2000);
        assert_eq!(servers[1].username.as_deref(), Some("2000:ann@a.test"));
    }
}
