//! What the page holds: the signed-in session, the relay socket, the calls
//! (the current one, one held for a consultation, the other legs of a group
//! call) with their connections, recordings, the lists fetched from the relay,
//! and the timers and listeners that live as long as the page. Data and the
//! small operations on it only: nothing here feeds a call, draws or fetches;
//! the modules that do (`calling`, `render`, `lists`, ...) build on this one,
//! and `app` wires them to the page's events.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use shieldcall_proto::{CallId, ClientMsg};
use web_sys::RtcPeerConnection;

use crate::call::{Call, PcCommand, Wish};
use crate::dom::{show, text};
use crate::listen::{Listener, Timer};
use crate::net::Socket;
use crate::rtc::{self, DtlsInfo, Peer};
use crate::session::Session;
use crate::ui::Ui;

/// The shared app, as callbacks see it.
pub type Shared = Rc<RefCell<App>>;

/// Everything the client holds.
#[derive(Debug)]
pub struct App {
    /// The page's elements.
    pub ui: Ui,
    /// Who is signed in, contacts, settings, ICE servers, a call elsewhere.
    pub(crate) session: Session,
    /// The relay connection, while open or opening.
    pub(crate) socket: Option<Socket>,
    /// Messages waiting for the socket to open.
    pub(crate) outbox: VecDeque<ClientMsg>,
    /// Failed connection attempts in a row, for the backoff.
    pub(crate) attempts: u32,
    /// Seconds since the relay connection last brought anything (see
    /// [`crate::session::liveness`]).
    pub(crate) quiet: u32,
    /// The current (or just ended) call, with its connection.
    pub(crate) current: Option<Line>,
    /// The ring tone and notification of the call ringing here, if any.
    pub(crate) alert: Option<crate::alert::Alert>,
    /// The call history as last fetched, newest first.
    pub(crate) history: Vec<HistoryItem>,
    /// The highest generation given out (see [`Line::generation`]).
    pub(crate) generations: u32,
    /// The call this user holds while the current one consults about it
    /// (consult transfer), with its peer connection: current again when the
    /// consultation ends.
    pub(crate) held: Option<Line>,
    /// The other legs of a group call, beside `call` (see `group`).
    pub(crate) legs: Vec<Line>,
    /// The group call's members as the relay last said (empty: not in one).
    pub(crate) group: Vec<String>,
    /// The current call's recording, while it is recorded.
    pub(crate) recording: Option<Box<Recording>>,
    /// The current call's live captions, while they are on.
    pub(crate) captions: Option<Box<Recording>>,
    /// The recordings this person is in, as last fetched, newest first.
    pub(crate) recordings: Vec<RecordingItem>,
    /// "Consult first" was chosen before the call was held: whom to consult
    /// once the relay confirms the hold.
    pub(crate) pending_consult: Option<String>,
    /// The settings view is open.
    pub(crate) settings_open: bool,
    /// Listeners on the static UI, for the page's life.
    pub(crate) listeners: Vec<Listener>,
    /// The one-second ticker.
    pub(crate) ticker: Option<Timer>,
    /// The pending reconnect.
    pub(crate) reconnect: Option<Timer>,
    /// The relay refused this tab (`too-many-devices`): reconnecting would be
    /// refused again, so the tab stays closed until it is reloaded.
    pub(crate) stay_closed: bool,
    /// The current call carries out a transfer by this user: if it fails (refused,
    /// declined, unanswered), they are called back.
    pub(crate) ring_back: Option<String>,
}

/// A call and what belongs to it: the current call, one held for a
/// consultation, or another leg of a group call.
#[derive(Debug)]
pub(crate) struct Line {
    /// Its machine.
    pub call: Call,
    /// Its peer connection, once created.
    pub peer: Option<Peer>,
    /// Its number, so that late async results and events of another call are
    /// dropped: every call gets one no call had before
    /// ([`App::next_generation`]), and keeps it while held or a leg.
    pub generation: u32,
    /// Its DTLS details.
    pub dtls: Option<DtlsInfo>,
    /// Its local media's promise.
    pub media_attached: Option<js_sys::Promise>,
    /// Its peer-connection commands not yet carried out.
    pub queue: VecDeque<PcCommand>,
    /// One of them is running.
    pub busy: bool,
    /// A certificate made while it rang here (an incoming call): accepting
    /// then commits without waiting for one.
    pub cert: Option<web_sys::RtcCertificate>,
    /// Where its remote media shows (a leg's own video; none while held or
    /// current: the current call shows in the page's main video).
    pub video: Option<web_sys::HtmlMediaElement>,
}

impl Line {
    /// A line for `call`, numbered `generation`, with no connection yet.
    pub(crate) fn new(
        call: Call,
        generation: u32,
        video: Option<web_sys::HtmlMediaElement>,
    ) -> Self {
        Self {
            call,
            peer: None,
            generation,
            dtls: None,
            media_attached: None,
            queue: VecDeque::new(),
            busy: false,
            cert: None,
            video,
        }
    }
}

impl App {
    /// How `user` is shown (see [`Session::shown`]).
    pub(crate) fn shown(&self, user: &str) -> String {
        self.session.shown(user)
    }

    pub(crate) fn new(ui: Ui) -> Self {
        Self {
            ui,
            session: Session::default(),
            socket: None,
            outbox: VecDeque::new(),
            attempts: 0,
            quiet: 0,
            current: None,
            generations: 0,
            held: None,
            legs: Vec::new(),
            group: Vec::new(),
            recording: None,
            captions: None,
            recordings: Vec::new(),
            pending_consult: None,
            history: Vec::new(),
            alert: None,
            settings_open: false,
            listeners: Vec::new(),
            ticker: None,
            reconnect: None,
            stay_closed: false,
            ring_back: None,
        }
    }

    pub(crate) fn send(&mut self, msg: ClientMsg) {
        let sent = self.socket.as_ref().is_some_and(|s| s.send(&msg));
        if !sent && self.outbox.len() < 64 {
            self.outbox.push_back(msg);
        }
    }

    pub(crate) fn notice(&self, message: &str) {
        text(&self.ui.notice_text, message);
        show(&self.ui.notice, !message.is_empty());
    }

    /// A generation no call had before (see [`Line::generation`]).
    pub(crate) fn next_generation(&mut self) -> u32 {
        self.generations += 1;
        self.generations
    }

    /// Makes `call` the current call, with a generation no call had before and
    /// an empty command queue: a command of the call before may still be
    /// running, but it acts on that call only (by generation). The call
    /// before, with its connection (and camera), goes.
    pub(crate) fn set_current(&mut self, call: Call) -> u32 {
        let generation = self.next_generation();
        self.current = Some(Line::new(call, generation, None));
        generation
    }

    /// Makes `line` the current call (a held call back after a consultation, a
    /// leg of a group call after the current one ended); the current call's
    /// connection, if any, closes.
    pub(crate) fn install(&mut self, mut line: Line) {
        line.video = None;
        self.current = Some(line);
    }

    /// The current (or just ended) call.
    pub(crate) fn call(&self) -> Option<&Call> {
        self.current.as_ref().map(|l| &l.call)
    }

    /// The current call, to feed.
    pub(crate) fn call_mut(&mut self) -> Option<&mut Call> {
        self.current.as_mut().map(|l| &mut l.call)
    }

    /// The current call's peer connection, once created.
    pub(crate) fn peer(&self) -> Option<&Peer> {
        self.current.as_ref().and_then(|l| l.peer.as_ref())
    }

    /// The current call's generation; `None` without a call.
    pub(crate) fn generation(&self) -> Option<u32> {
        self.current.as_ref().map(|l| l.generation)
    }

    pub(crate) fn call_active(&self) -> bool {
        self.call().is_some_and(|c| !c.is_ended())
    }

    /// What this user's setting, as last pushed, asks of a new call's mode.
    pub(crate) fn wish(&self) -> Wish {
        self.session.wish()
    }
}

/// What belongs to one call's connection, wherever the call is kept.
pub(crate) struct Slot<'a> {
    /// Its peer connection, once made.
    pub peer: &'a mut Option<Peer>,
    /// Settles when its local media is attached (`true`) or failed.
    pub media: &'a mut Option<js_sys::Promise>,
    /// Its commands not yet carried out.
    pub queue: &'a mut std::collections::VecDeque<PcCommand>,
    /// A command is running.
    pub busy: &'a mut bool,
    /// Its DTLS details for the panel.
    pub dtls: &'a mut Option<DtlsInfo>,
    /// Where its remote media shows (`None`: not shown while held).
    pub video: Option<web_sys::HtmlMediaElement>,
    /// It is the current call (the preview and the panel are its).
    pub current: bool,
}

impl App {
    /// The connection of the call numbered `generation`, if that call is here.
    pub(crate) fn slot(&mut self, generation: u32) -> Option<Slot<'_>> {
        let current = self.generation() == Some(generation);
        let main = self.ui.remote_video.clone();
        let line = match self.current.as_mut() {
            Some(line) if current => line,
            _ => self
                .legs
                .iter_mut()
                .chain(self.held.as_mut())
                .find(|l| l.generation == generation)?,
        };
        Some(Slot {
            video: if current {
                Some(main)
            } else {
                line.video.clone()
            },
            peer: &mut line.peer,
            media: &mut line.media_attached,
            queue: &mut line.queue,
            busy: &mut line.busy,
            dtls: &mut line.dtls,
            current,
        })
    }

    /// The peer connection of call `generation`, as a handle.
    pub(crate) fn pc_of(&mut self, generation: u32) -> Option<web_sys::RtcPeerConnection> {
        self.slot(generation)
            .and_then(|s| s.peer.as_ref().map(Peer::handle))
    }
}

/// A recording, as `GET /api/recordings` gives it.
#[derive(Debug, Clone)]
pub(crate) struct RecordingItem {
    /// Its id (the file's name).
    pub id: String,
    /// Whose side.
    pub owner: String,
    /// The other person.
    pub peer: String,
    /// How long, ms.
    pub duration_ms: u64,
    /// What the owner said, if transcribed (empty if not).
    pub transcript: String,
    /// A transcript of live captions alone (no file to play).
    pub captions: bool,
}

/// One entry of the call history, as `GET /api/history` gives it.
#[derive(Debug, Clone)]
pub(crate) struct HistoryItem {
    /// The other person.
    pub peer: String,
    /// `outgoing` or `incoming`.
    pub direction: String,
    /// `answered`, `missed`, `declined`, `not-answered` or `refused`.
    pub outcome: String,
    /// When the call began, Unix seconds.
    pub at: f64,
    /// How long it was up.
    pub duration_secs: u64,
}

/// A recording (or live captions) of the current call.
#[derive(Debug)]
pub(crate) struct Recording {
    /// What each person said last, in the order they first spoke: (who,
    /// words, the utterance ended). The next caption of a person replaces
    /// theirs (a call with captions has two people).
    pub said: Vec<(String, String, bool)>,
    /// The call recorded.
    pub call_id: CallId,
    /// Who asked for it.
    pub by: String,
    /// This person agreed: their media goes to the server.
    pub agreed: bool,
    /// The media leg, once made.
    pub pc: Option<RtcPeerConnection>,
    /// A voicemail for this person, not a recorded call.
    pub voicemail_to: Option<String>,
    /// A voicemail's own camera and microphone (a call's are the call's).
    pub stream: Option<web_sys::MediaStream>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(pc) = &self.pc {
            pc.close();
        }
        if let Some(s) = &self.stream {
            rtc::stop(s);
        }
    }
}
