//! The directory: what the hub knows of the store (tenants' external access and
//! calling policies, accounts and display names, everyone's settings),
//! reloaded at start, after each change the relay makes, and when the change
//! counter moves (the CLI, another process, changed the store).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::store::unix_now;
use crate::{AppState, Result, policy};

impl AppState {
    /// Re-reads tenants, accounts, policies, assignments and switches, and pushes
    /// changed settings and contact lists to signed-in users; closes the
    /// connections of sessions that no longer exist (signed out, password changed,
    /// expired) and of users that were removed.
    pub async fn refresh(&self) -> Result<()> {
        let _serial = self.inner.settings_lock.write().await;
        self.refresh_locked().await
    }

    /// The watcher's refresh for change counter `n`: skipped when, by the time
    /// the settings lock is ours, the relay has already accounted for `n`
    /// itself (a switch change holds the lock from its write to
    /// [`AppState::own_change`], and the watcher may read the new counter in
    /// between).
    async fn refresh_for(&self, n: i64) -> Result<()> {
        let _serial = self.inner.settings_lock.write().await;
        if self.inner.seen_changes.load(Ordering::Acquire) == n {
            return Ok(());
        }
        self.refresh_locked().await?;
        self.inner.seen_changes.store(n, Ordering::Release);
        Ok(())
    }

    async fn refresh_locked(&self) -> Result<()> {
        self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        let store = self.store();
        let tenants = store.tenants().await?;
        let calling = tenants
            .iter()
            .map(|t| (t.domain.clone(), t.calling))
            .collect();
        self.hub().set_calling_policies(calling);
        let access = tenants
            .into_iter()
            .map(|t| (t.domain, t.external_access))
            .collect();
        self.hub()
            .set_directory_named(access, store.directory().await?);
        // Sessions that ended elsewhere (a password change or sign-out by the
        // CLI, expiry) close their connections here, within a poll interval.
        let now = unix_now();
        for (user, session) in self.hub().online_sessions() {
            if store.session(&session, now).await?.is_none() {
                self.hub().sign_out(&user, Some(&session));
            }
        }
        let mut by_domain = HashMap::new();
        for user in self.hub().online_users() {
            let Some(u) = store.user(&user).await? else {
                self.hub().sign_out(&user, None);
                continue;
            };
            let domain = u.domain().to_string();
            if !by_domain.contains_key(&domain) {
                let data = (
                    store.policies(&domain).await?,
                    store.assignments(&domain).await?,
                );
                by_domain.insert(domain.clone(), data);
            }
            let Some((policies, assignments)) = by_domain.get(&domain) else {
                continue;
            };
            let groups = store.groups_of(&user).await?;
            let setting =
                policy::effective_setting(policies, assignments, &user, &groups, u.e2ee_switch);
            self.hub().push_settings(&user, &setting);
        }
        Ok(())
    }
}

/// Watches the store's change counter and refreshes signed-in users on a change,
/// so the CLI (another process) reaches them: at once where the store signals
/// its changes ([`crate::store::Store::change_events`], PostgreSQL), else within
/// a poll interval. The poll runs in both cases, as the safety net.
pub(crate) async fn watch_changes(state: AppState) {
    let mut events = match state.store().change_events().await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "listening for store changes failed; polling only");
            None
        }
    };
    let mut tick = tokio::time::interval(state.config().poll_interval);
    loop {
        if let Some(rx) = events.as_mut() {
            let closed = tokio::select! {
                _ = tick.tick() => false,
                got = rx.recv() => got.is_none(),
            };
            if closed {
                events = None;
            }
        } else {
            tick.tick().await;
        }
        match state.store().changes().await {
            Ok(n) if n != state.inner.seen_changes.load(Ordering::Acquire) => {
                // Read before the refresh: a change during it is seen next time.
                if let Err(e) = state.refresh_for(n).await {
                    tracing::warn!(error = %e, "refresh after store change failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the change counter failed"),
        }
    }
}

/// Loads external access and the accounts into the hub before the first
/// connection, so no contact list is drawn from an empty directory. A failure is
/// logged; the change watcher tries again.
pub(crate) async fn initial_refresh(state: &AppState) {
    if let Err(e) = state.refresh().await {
        tracing::warn!(error = %e, "loading the directory failed");
    }
}
