//! What each message of a signed-in connection does beyond the socket: the
//! one place on the connection's side that reads the store (the user's
//! settings, whether a callee exists, both people's policies for a call's
//! mode) and decides what the hub is given; then the hub call. The socket loop
//! (`super::run`) writes the replies returned here; what the hub sends reaches
//! the same socket through the device's outbox.
//!
//! Never logs SDP, candidates, cookies or message bodies.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use shieldcall_proto::{
    CallId, CallMode, ClientMsg, ErrorCode, PROTOCOL_VERSION, RefuseReason, RelayMsg,
};

use crate::AppState;
use crate::auth::Authed;
use crate::error::Error;
use crate::hub::{DeviceId, Input, MAX_DEVICES_PER_USER, OutboxSender, PRESENCE_CHUNK, WireError};
use crate::ops::{self, Ops};
use crate::policy::{self, Party};
use crate::store::unix_now;
use crate::turn;

/// What the connection does after writing a reply.
pub(super) enum Flow {
    /// Goes on reading.
    Continue,
    /// Closes (a message too large, a protocol version it does not speak).
    Close,
}

/// One connection's state, as its messages see it.
pub(super) struct Conn {
    pub(super) state: AppState,
    pub(super) authed: Authed,
    /// Set at `hello`.
    pub(super) device: Option<DeviceId>,
    /// The outbox sender until `hello` hands it to the hub.
    pub(super) tx: Option<OutboxSender>,
    /// Set by the hub when the outbox overflowed.
    pub(super) overflow: Arc<AtomicBool>,
    /// In a cluster: notified to close the connection so that the browser
    /// connects again and resumes (see `remote`).
    pub(super) kick: Arc<tokio::sync::Notify>,
}

/// What an outgoing call carries besides its callee.
#[derive(Debug)]
enum Via {
    /// The token of a blind transfer's `refer`.
    Transfer(String),
    /// The held call this one consults about.
    Consult(CallId),
}

/// The direct reply to a message the hub handled: nothing, or its error.
fn replied(done: Result<(), WireError>) -> Vec<(RelayMsg, Flow)> {
    done.err()
        .map(|e| (e.into_msg(), Flow::Continue))
        .into_iter()
        .collect()
}

fn err(code: ErrorCode, message: impl Into<String>) -> Vec<(RelayMsg, Flow)> {
    vec![(RelayMsg::error(code, message, None), Flow::Continue)]
}

impl Conn {
    fn user(&self) -> &str {
        &self.authed.user.name
    }

    /// Handles one text frame; returns the direct replies.
    pub(super) async fn handle(&mut self, text: &str) -> Vec<(RelayMsg, Flow)> {
        let msg = match ClientMsg::decode(text) {
            Ok(m) => m,
            Err(e) => {
                let flow = if e.code() == ErrorCode::TooLarge {
                    Flow::Close
                } else {
                    Flow::Continue
                };
                return vec![(RelayMsg::error(e.code(), e.to_string(), None), flow)];
            }
        };
        // In a cluster, a message of a call another node carries goes there.
        if let (Some(dev), Some(c)) = (self.device, self.state.cluster()) {
            let home = match &msg {
                ClientMsg::Invite {
                    transfer: Some(token),
                    ..
                } => c.home_of_token(dev, token),
                ClientMsg::Pickup { code, .. } => c.home_of_code(&self.state, dev, *code).await,
                m => match m.call_id() {
                    Some(id) => {
                        let resume = matches!(m, ClientMsg::Resume { .. });
                        c.home_for(&self.state, dev, id, resume).await
                    }
                    None => None,
                },
            };
            if let Some(home) = home {
                c.forward(&home, dev, &self.authed, text);
                return Vec::new();
            }
        }
        let result = match (self.device, msg) {
            (None, ClientMsg::Hello { version }) => {
                if version != PROTOCOL_VERSION {
                    let m = format!("This relay speaks protocol version {PROTOCOL_VERSION}.");
                    return vec![(
                        RelayMsg::error(ErrorCode::UnsupportedVersion, m, None),
                        Flow::Close,
                    )];
                }
                self.hello().await
            }
            (None, _) => return err(ErrorCode::HelloFirst, "Send hello first."),
            (Some(_), ClientMsg::Hello { .. }) => {
                return err(ErrorCode::HelloFirst, "hello was already sent.");
            }
            (Some(_), ClientMsg::Ping { id }) => {
                return vec![(RelayMsg::Pong { id }, Flow::Continue)];
            }
            (Some(_), ClientMsg::SetE2ee { enabled }) => self.set_e2ee(enabled).await,
            (Some(dev), ClientMsg::Invite { to, transfer }) => {
                self.invite(dev, &to, transfer.map(Via::Transfer)).await
            }
            (Some(dev), ClientMsg::Consult { call_id, to }) => {
                self.invite(dev, &to, Some(Via::Consult(call_id))).await
            }
            (Some(dev), ClientMsg::ConsultTransfer { call_id, consult }) => {
                self.consult_transfer(dev, &call_id, &consult, false).await
            }
            (Some(dev), ClientMsg::Merge { call_id, consult }) => {
                self.consult_transfer(dev, &call_id, &consult, true).await
            }
            (Some(dev), ClientMsg::Add { call_id, to }) => self.add(dev, &call_id, &to).await,
            (Some(dev), ClientMsg::Voicemail { to }) => self.voicemail(dev, &to).await,
            (
                Some(dev),
                ClientMsg::MediaOffer {
                    call_id,
                    sdp,
                    captions,
                },
            ) => self.media_offer(dev, call_id, sdp, captions).await,
            (Some(dev), msg @ ClientMsg::Join { .. }) => {
                return replied(
                    self.state
                        .hub()
                        .handle(Instant::now(), dev, Input::Join(&msg)),
                );
            }
            (Some(dev), ClientMsg::Transfer { call_id, to }) => {
                self.transfer(dev, &call_id, &to).await
            }
            (Some(dev), msg @ ClientMsg::Resume { .. }) => self.resume(dev, msg).await,
            (Some(dev), msg @ ClientMsg::MoveHere { .. }) => self.move_here(dev, msg).await,
            (Some(dev), msg @ ClientMsg::Pickup { .. }) => self.pickup(dev, msg).await,
            (Some(dev), ClientMsg::Park { call_id }) => {
                return match self.state.cluster() {
                    // A code no other node gives out, so that the call can
                    // be picked up through any node.
                    Some(c) => match c.park(&self.state, dev, &call_id).await {
                        Ok(done) => replied(done),
                        Err(e) => {
                            tracing::error!(error = %e, "parking failed");
                            err(ErrorCode::Internal, "The relay failed to park the call.")
                        }
                    },
                    None => replied(self.state.hub().handle(
                        Instant::now(),
                        dev,
                        Input::Park {
                            id: &call_id,
                            code: None,
                        },
                    )),
                };
            }
            (Some(dev), other) => {
                return replied(
                    self.state
                        .hub()
                        .handle(Instant::now(), dev, Input::Call(other)),
                );
            }
        };
        match result {
            Ok(replies) => replies,
            Err(e) => {
                tracing::error!(error = %e, "message handling failed");
                err(
                    ErrorCode::Internal,
                    "The relay failed to handle this message.",
                )
            }
        }
    }

    async fn hello(&mut self) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let (dev, setting) = match self.register().await? {
            Ok(registered) => registered,
            Err(refused) => return Ok(vec![(refused, Flow::Close)]),
        };
        let hub = self.state.hub();
        if let Some(c) = self.state.cluster() {
            // Recorded before anyone is told: a node that lost its lease
            // serves no one.
            let session = &self.authed.session.token_hash;
            c.watch(dev, self.kick.clone());
            if !c.node().device_up(dev, self.user(), session).await? {
                hub.unregister(Instant::now(), dev, self.user());
                self.device = None;
                let m = RelayMsg::error(
                    ErrorCode::Internal,
                    "This relay node is stopping; connect again.",
                    None,
                );
                return Ok(vec![(m, Flow::Close)]);
            }
        }
        if let Some(c) = self.state.cluster()
            && hub.is_busy(self.user())
        {
            // Only someone busy can have an answered call on another node
            // (the nodes said so when it was placed). What the homes answer
            // reaches the outbox, which the socket loop reads only after
            // writing these replies: after `welcome`.
            c.attach(dev, self.user()).await;
        }
        tracing::info!(user = %self.user(), device = dev, "device connected");
        let welcome = RelayMsg::Welcome {
            version: PROTOCOL_VERSION,
            user: self.user().to_string(),
            device: format!("d-{dev:x}"),
            admin: self.authed.user.admin,
            e2ee: setting,
            ice_servers: turn::ice_servers(
                &self.state.config().ice,
                self.user(),
                unix_now(),
                self.authed.session.expires_at,
            ),
        };
        let contacts = hub.contacts_of(self.user());
        let mut replies = vec![(welcome, Flow::Continue)];
        for chunk in contacts.chunks(PRESENCE_CHUNK) {
            let contacts = chunk.to_vec();
            replies.push((RelayMsg::Presence { contacts }, Flow::Continue));
        }
        if contacts.is_empty() {
            let contacts = Vec::new();
            replies.push((RelayMsg::Presence { contacts }, Flow::Continue));
        }
        if let Some(elsewhere) = hub.elsewhere_of(self.user(), dev) {
            replies.push((elsewhere, Flow::Continue));
        }
        Ok(replies)
    }

    /// Signs the device in with the hub (and, in a cluster, records it);
    /// `Err` is the message that refuses it, after which the connection closes.
    pub(super) async fn register(
        &mut self,
    ) -> crate::Result<Result<(DeviceId, shieldcall_proto::E2eeSetting), RelayMsg>> {
        let store = self.state.store();
        let _serial = self.state.signin_guard().await;
        // The session may have ended since the upgrade (sign-out, password change):
        // checked again under the lock the directory refresh holds, so a session
        // ended after this check is caught by the next refresh.
        if store
            .session(&self.authed.session.token_hash, unix_now())
            .await?
            .is_none()
        {
            let m = RelayMsg::error(
                ErrorCode::SessionExpired,
                "Your session ended; sign in again.",
                None,
            );
            return Ok(Err(m));
        }
        let setting = ops::effective_setting(store, self.user()).await?;
        let tx = self
            .tx
            .take()
            .ok_or_else(|| Error::Internal("outbox already taken".into()))?;
        let hub = self.state.hub();
        let Some(dev) = hub.register(
            self.user(),
            &self.authed.session.token_hash,
            setting.clone(),
            tx,
            self.overflow.clone(),
        ) else {
            let m = format!(
                "You have {MAX_DEVICES_PER_USER} devices connected already; close one and try again."
            );
            return Ok(Err(RelayMsg::error(ErrorCode::TooManyDevices, m, None)));
        };
        self.device = Some(dev);
        Ok(Ok((dev, setting)))
    }

    async fn set_e2ee(&mut self, enabled: bool) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let name = self.authed.user.name.clone();
        let ops = Ops {
            store: self.state.store(),
            actor: &name,
        };
        if !self.state.hub().may_switch(&name, Instant::now()) {
            return Ok(err(
                ErrorCode::RateLimited,
                "The switch can change at most once a second; try again.",
            ));
        }
        let _serial = self.state.settings_guard().await;
        let before = self.state.store().changes().await?;
        match ops.set_switch(&name, enabled).await {
            Ok(setting) => {
                // Only this user changed, and they get it pushed here: no full
                // directory refresh for it (M2).
                let after = self.state.store().changes().await?;
                self.state.own_change(before, after);
                // Every device of the user, this one included, gets `settings`.
                self.state.hub().push_settings(&name, &setting);
                Ok(Vec::new())
            }
            Err(Error::Forbidden(_)) => Ok(err(
                ErrorCode::PolicyLocked,
                "Your organisation's policy decides this setting.",
            )),
            Err(e) => Err(e),
        }
    }

    /// `invite` (possibly carrying out a blind transfer) or `consult` (a call
    /// placed while another waits on hold): the callee is checked and the call
    /// decided here, then placed by the hub.
    async fn invite(
        &mut self,
        dev: DeviceId,
        to: &str,
        via: Option<Via>,
    ) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let hub = self.state.hub();
        let refuse = |reason, peer: &str| -> crate::Result<Vec<(RelayMsg, Flow)>> {
            Ok(vec![(
                RelayMsg::CallRefused {
                    call_id: hub.mint_call_id(self.user(), peer, CallMode::Standard)?,
                    peer: peer.to_string(),
                    reason,
                    required_by: None,
                },
                Flow::Continue,
            )])
        };
        let Ok(callee) = ops::normalize_user(to) else {
            return refuse(RefuseReason::UnknownUser, to);
        };
        if callee == self.user() {
            return refuse(RefuseReason::SelfCall, &callee);
        }
        // External access first: whether an account exists in a tenant the
        // caller may not reach is none of the caller's business.
        if !self.reachable(&callee) {
            return refuse(RefuseReason::NotAllowed, &callee);
        }
        if self.state.store().user(&callee).await?.is_none() {
            return refuse(RefuseReason::UnknownUser, &callee);
        }
        let decision = self.decide(&callee).await?;
        let mode = decision.as_ref().map_or(CallMode::Standard, |m| *m);
        let call_id = hub.mint_call_id(self.user(), &callee, mode)?;
        let referred_by = match via {
            None => None,
            Some(Via::Consult(held)) => {
                let decision = self
                    .cluster_place(&call_id, &callee, dev, Some(&held), decision)
                    .await?;
                let done = hub.handle(
                    Instant::now(),
                    dev,
                    Input::Consult {
                        held: &held,
                        callee: &callee,
                        decision,
                        call_id: call_id.clone(),
                    },
                );
                self.cluster_placed(&call_id).await;
                return Ok(replied(done));
            }
            Some(Via::Transfer(token)) => match hub.take_referral(&token, self.user(), &callee) {
                Some(by) => Some(by),
                None => {
                    return Ok(vec![(
                        RelayMsg::error(
                            ErrorCode::WrongState,
                            "This transfer is no longer valid (a transfer is carried out once, within 30 s); call them yourself.",
                            None,
                        ),
                        Flow::Continue,
                    )]);
                }
            },
        };
        let decision = self
            .cluster_place(&call_id, &callee, dev, None, decision)
            .await?;
        let done = hub.handle(
            Instant::now(),
            dev,
            Input::Invite {
                callee: &callee,
                decision,
                call_id: call_id.clone(),
                referred_by,
            },
        );
        self.cluster_placed(&call_id).await;
        Ok(replied(done))
    }

    /// In the cluster configuration, before the hub places call `id` to
    /// `callee`: the busy rows and the callee's devices on other nodes (see
    /// `remote`). Elsewhere, `decision` unchanged.
    async fn cluster_place(
        &self,
        id: &CallId,
        callee: &str,
        dev: DeviceId,
        beside: Option<&CallId>,
        decision: Result<CallMode, policy::Refusal>,
    ) -> crate::Result<Result<CallMode, policy::Refusal>> {
        match self.state.cluster() {
            Some(c) => {
                c.place(&self.state, id, self.user(), callee, dev, beside, decision)
                    .await
            }
            None => Ok(decision),
        }
    }

    /// In the cluster configuration, after the hub was asked to place call
    /// `id`: the rows of a call it refused go.
    async fn cluster_placed(&self, id: &CallId) {
        if let Some(c) = self.state.cluster() {
            c.placed(&self.state, id).await;
        }
    }

    /// `transfer`: the other person of `call_id` is to call `to`. The target must
    /// be an account this user's peer may reach, signed in, and the policies must
    /// allow the two a call (its mode is decided when they call).
    async fn transfer(
        &mut self,
        dev: DeviceId,
        call_id: &CallId,
        to: &str,
    ) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let hub = self.state.hub();
        let wrong = |m: String| -> crate::Result<Vec<(RelayMsg, Flow)>> {
            Ok(vec![(
                RelayMsg::error(ErrorCode::WrongState, m, Some(call_id.clone())),
                Flow::Continue,
            )])
        };
        let Some(peer) = hub.call_peer(call_id, self.user()) else {
            return Ok(vec![(
                RelayMsg::error(
                    ErrorCode::NotYourCall,
                    "You are not part of this call.",
                    Some(call_id.clone()),
                ),
                Flow::Continue,
            )]);
        };
        let Ok(target) = ops::normalize_user(to) else {
            return wrong(format!("{to:?} is not a user name (name@domain)."));
        };
        if target == peer || target == self.user() {
            return wrong("Transfer to someone other than the two of you.".into());
        }
        // Neither the target's existence nor their presence is told to someone
        // who may not reach them.
        let reach = |a: &str, b: &str| {
            let (da, db) = (policy::domain_of(a), policy::domain_of(b));
            policy::reachable(da, &hub.external_access(da), db, &hub.external_access(db))
        };
        if !reach(self.user(), &target)
            || !reach(&peer, &target)
            || self.state.store().user(&target).await?.is_none()
        {
            return wrong(format!("{peer} cannot be transferred to {target}."));
        }
        let decision = self.decide_between(&peer, &target).await?;
        Ok(replied(hub.handle(
            Instant::now(),
            dev,
            Input::Transfer {
                id: call_id,
                target: &target,
                allowed: decision.is_ok(),
            },
        )))
    }

    /// `consult-transfer` (or `merge`): the pair it would connect is decided
    /// now, from today's policies, as a new call between them would be.
    async fn consult_transfer(
        &mut self,
        dev: DeviceId,
        held: &CallId,
        consult: &CallId,
        merge: bool,
    ) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let hub = self.state.hub();
        let user = self.user().to_string();
        let decision = match hub.consult_pair(held, consult, &user) {
            Some((waiting, target)) => Some(self.decide_between(&waiting, &target).await?),
            None => None,
        };
        let input = if merge {
            Input::Merge {
                held,
                consult,
                decision,
            }
        } else {
            Input::ConsultTransfer {
                held,
                consult,
                decision,
            }
        };
        Ok(replied(hub.handle(Instant::now(), dev, input)))
    }

    /// `media-offer`: the hub says whether this device may send its media to
    /// the server now (a recorded, or with `captions` captioned, standard call
    /// it is bound to); then the media component answers. The SDP is never
    /// logged.
    async fn media_offer(
        &mut self,
        dev: DeviceId,
        call_id: CallId,
        sdp: String,
        captions: bool,
    ) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let user = self.user().to_string();
        let hub = self.state.hub();
        let (peer, voicemail, transcribe) = match hub.media_leg(dev, &user, &call_id, captions) {
            Ok(leg) => leg,
            Err(e) => return Ok(vec![(e.into_msg(), Flow::Continue)]),
        };
        let open = crate::media::Open {
            call_id: call_id.clone(),
            owner: user,
            peer,
            offer: sdp,
            voicemail,
            captions,
            transcribe,
        };
        let answer = match self.state.media().await?.open(open).await {
            Ok(answer) => answer,
            Err(Error::Invalid(why)) => {
                let m = format!("The media offer was refused: {why}");
                let e = RelayMsg::error(ErrorCode::WrongState, m, Some(call_id));
                return Ok(vec![(e, Flow::Continue)]);
            }
            Err(e) => return Err(e),
        };
        Ok(vec![(
            RelayMsg::MediaAnswer {
                call_id,
                sdp: answer,
                captions,
            },
            Flow::Continue,
        )])
    }

    /// `voicemail`: the recipient is checked as for an invite (an account this
    /// user may reach), and the pair decided now.
    async fn voicemail(&mut self, dev: DeviceId, to: &str) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let user = self.user().to_string();
        let refuse = |m: String| {
            Ok(vec![(
                RelayMsg::error(ErrorCode::WrongState, m, None),
                Flow::Continue,
            )])
        };
        let Ok(to) = ops::normalize_user(to) else {
            return refuse(format!("{to:?} is not a user name (name@domain)."));
        };
        if to == user || !self.reachable(&to) || self.state.store().user(&to).await?.is_none() {
            return refuse(format!("No voicemail can be left for {to}."));
        }
        let decision = self.decide(&to).await?;
        let hub = self.state.hub();
        let id = hub.mint_call_id(&user, &to, CallMode::Standard)?;
        Ok(replied(hub.handle(
            Instant::now(),
            dev,
            Input::Voicemail {
                to: &to,
                decision,
                id,
            },
        )))
    }

    /// `add`: the newcomer is checked as for an invite, and a call with each
    /// member of the call is decided now; the hub places the call if every one
    /// would be standard.
    async fn add(
        &mut self,
        dev: DeviceId,
        id: &CallId,
        to: &str,
    ) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let hub = self.state.hub();
        let user = self.user().to_string();
        let error = |code, m: String| {
            Ok(vec![(
                RelayMsg::error(code, m, Some(id.clone())),
                Flow::Continue,
            )])
        };
        let Some(members) = hub.call_members(id, &user) else {
            return error(
                ErrorCode::NotYourCall,
                "You are not part of this call.".into(),
            );
        };
        let Ok(newcomer) = ops::normalize_user(to) else {
            return error(
                ErrorCode::WrongState,
                format!("{to:?} is not a user name (name@domain)."),
            );
        };
        // Whether the account exists is told only to someone who may reach it.
        if !self.reachable(&newcomer) || self.state.store().user(&newcomer).await?.is_none() {
            return error(
                ErrorCode::WrongState,
                format!("{newcomer} cannot be added to this call."),
            );
        }
        let mut decisions = Vec::with_capacity(members.len());
        for m in members.iter().filter(|m| **m != newcomer) {
            decisions.push((m.clone(), self.decide_between(m, &newcomer).await?));
        }
        let call_id = hub.mint_call_id(&user, &newcomer, CallMode::Standard)?;
        if let Err(r) = self
            .cluster_place(&call_id, &newcomer, dev, Some(id), Ok(CallMode::Standard))
            .await?
        {
            let m = format!(
                "{newcomer} cannot be added to this call now ({:?}).",
                r.reason
            );
            return error(ErrorCode::WrongState, m);
        }
        let done = hub.handle(
            Instant::now(),
            dev,
            Input::Add {
                id,
                to: &newcomer,
                decisions: &decisions,
                call_id: call_id.clone(),
            },
        );
        self.cluster_placed(&call_id).await;
        Ok(replied(done))
    }

    /// Whether this user and `other` may reach each other under their tenants'
    /// external access (one lookup, the hub's directory).
    fn reachable(&self, other: &str) -> bool {
        let hub = self.state.hub();
        let (me, them) = (policy::domain_of(self.user()), policy::domain_of(other));
        policy::reachable(
            me,
            &hub.external_access(me),
            them,
            &hub.external_access(them),
        )
    }

    /// The call decision for this user calling `callee`, from the current
    /// settings and external access. Its mode does not depend on who calls.
    async fn decide(&self, callee: &str) -> crate::Result<Result<CallMode, policy::Refusal>> {
        self.decide_between(self.user(), callee).await
    }

    /// The call decision for `caller` calling `callee` (a transfer decides for
    /// two other people).
    async fn decide_between(
        &self,
        caller: &str,
        callee: &str,
    ) -> crate::Result<Result<CallMode, policy::Refusal>> {
        let store = self.state.store();
        let hub = self.state.hub();
        let caller_setting = ops::effective_setting(store, caller).await?;
        let callee_setting = ops::effective_setting(store, callee).await?;
        let ca = hub.external_access(policy::domain_of(caller));
        let ea = hub.external_access(policy::domain_of(callee));
        Ok(policy::decide_call(
            Party {
                user: caller,
                setting: &caller_setting,
                access: &ca,
            },
            Party {
                user: callee,
                setting: &callee_setting,
                access: &ea,
            },
        ))
    }

    /// `move-here`: the pair's call decision is made again now, so a call moves to
    /// a new device only as the policies would set it up today.
    async fn move_here(
        &mut self,
        dev: DeviceId,
        msg: ClientMsg,
    ) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let hub = self.state.hub();
        let peer = msg.call_id().and_then(|id| hub.call_peer(id, self.user()));
        let decision = match peer {
            Some(peer) => Some(self.decide(&peer).await?),
            None => None,
        };
        Ok(replied(self.state.hub().handle(
            Instant::now(),
            dev,
            Input::MoveHere {
                msg: &msg,
                decision,
            },
        )))
    }

    /// `pickup`: the decision for this user and the person waiting, made now.
    async fn pickup(
        &mut self,
        dev: DeviceId,
        msg: ClientMsg,
    ) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let hub = self.state.hub();
        let peer = match &msg {
            ClientMsg::Pickup { code, .. } => hub.parked_peer(*code),
            _ => None,
        };
        let decision = match peer {
            Some(peer) if peer != self.user() => Some(self.decide(&peer).await?),
            _ => None,
        };
        Ok(replied(self.state.hub().handle(
            Instant::now(),
            dev,
            Input::Pickup {
                msg: &msg,
                decision,
            },
        )))
    }

    /// `resume`: for a call the relay does not know (it restarted), the call
    /// decision is made again now, so a restore follows today's policies.
    async fn resume(
        &mut self,
        dev: DeviceId,
        msg: ClientMsg,
    ) -> crate::Result<Vec<(RelayMsg, Flow)>> {
        let decision = match &msg {
            ClientMsg::Resume { call_id, peer, .. }
                if !self.state.hub().knows_call(call_id)
                    && ops::normalize_user(peer).is_ok_and(|p| p == *peer)
                    && self.state.store().user(peer).await?.is_some() =>
            {
                Some(self.decide(peer).await?)
            }
            _ => None,
        };
        Ok(replied(self.state.hub().handle(
            Instant::now(),
            dev,
            Input::Resume { msg, decision },
        )))
    }
}
