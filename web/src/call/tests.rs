//! Every path of the call machine, natively.

use shieldcall_proto::{
    CallId, CallMode, ClientMsg, Commitment, Fingerprint, HangupReason, IceCandidate, RefuseReason,
    RelayMsg, security_code,
};

use super::*;

const BOB: &str = "bob@example.test";
const ALICE: &str = "alice@example.test";

fn id() -> CallId {
    CallId("c1".into())
}

fn fp(b: u8) -> Fingerprint {
    Fingerprint::from_bytes([b; 32])
}

fn sdp(fp: &Fingerprint) -> String {
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 {fp}\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
    )
}

fn cand(n: u8) -> IceCandidate {
    IceCandidate {
        candidate: format!(
            "candidate:{n} 1 udp 1 127.0.0.1 {} typ host",
            5000 + u16::from(n)
        ),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    }
}

fn relay(m: RelayMsg) -> Input {
    Input::Relay(m)
}

fn sent(out: &[Output]) -> Vec<&ClientMsg> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(m) => Some(m),
            Output::Pc(_) => None,
        })
        .collect()
}

/// Caller up to the point where the callee has accepted with `commit`.
fn caller_ringing(mode: CallMode) -> Call {
    let (mut c, out) = Call::outgoing(BOB, Wish::None, 0);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Invite {
            to: BOB.into(),
            transfer: None
        }]
    );
    // The peer connection is made while it rings (see `prepared_while_ringing`).
    assert_eq!(
        c.handle(
            relay(RelayMsg::Calling {
                call_id: id(),
                to: BOB.into(),
                mode
            }),
            10
        ),
        vec![Output::Pc(PcCommand::Create)]
    );
    assert_eq!(c.view().phase, Phase::Ringing);
    c
}

/// An E2EE caller (certificate `fp(1)`) holding the answer of a callee that
/// committed to `fp(2)` and answered with it: everything but DTLS.
fn caller_answered() -> Call {
    let mut c = caller_ringing(CallMode::E2ee);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: Some(Commitment::to(&fp(2))),
        }),
        1,
    );
    c.handle(Input::PeerReady { local: fp(1) }, 2);
    c.handle(Input::LocalOffer { sdp: sdp(&fp(1)) }, 3);
    c.handle(
        relay(RelayMsg::Answer {
            call_id: id(),
            sdp: sdp(&fp(2)),
        }),
        4,
    );
    assert_eq!(c.view().code, None, "no code before DTLS");
    c
}

/// A full E2EE call from the caller's side; returns the machine once connected.
fn caller_connected(caller_fp: Fingerprint, callee_fp: Fingerprint) -> Call {
    let mut c = caller_ringing(CallMode::E2ee);
    let out = c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: Some(Commitment::to(&callee_fp)),
        }),
        20,
    );
    // The peer connection asked for while ringing is not ready yet.
    assert!(out.is_empty());
    assert_eq!(
        c.handle(Input::PeerReady { local: caller_fp }, 30),
        vec![Output::Pc(PcCommand::CreateOffer)]
    );
    let out = c.handle(
        Input::LocalOffer {
            sdp: sdp(&caller_fp),
        },
        40,
    );
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Offer {
            call_id: id(),
            sdp: sdp(&caller_fp)
        }]
    );
    let out = c.handle(
        relay(RelayMsg::Answer {
            call_id: id(),
            sdp: sdp(&callee_fp),
        }),
        50,
    );
    assert_eq!(
        out,
        vec![Output::Pc(PcCommand::SetAnswer {
            sdp: sdp(&callee_fp)
        })]
    );
    assert_eq!(c.view().code, None, "no code before DTLS");
    c.handle(
        Input::DtlsConnected {
            local: Some(caller_fp),
            remote: Some(callee_fp),
        },
        60,
    );
    c
}

/// A callee (certificate `fp(2)`) in a call of `mode` that the caller (`fp(1)`)
/// offered, answered and connected with matching certificates; `wish` is the
/// callee's own setting. Returns the machine and what accepting sent.
fn callee_connected(mode: CallMode, wish: Wish) -> (Call, Vec<Output>) {
    let (mut c, _) = Call::incoming(id(), ALICE, mode, wish, 0);
    c.handle(Input::User(UserAction::Accept), 1);
    let accepted = c.handle(Input::PeerReady { local: fp(2) }, 2);
    c.handle(
        relay(RelayMsg::Offer {
            call_id: id(),
            sdp: sdp(&fp(1)),
        }),
        3,
    );
    c.handle(Input::LocalAnswer { sdp: sdp(&fp(2)) }, 4);
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(2)),
            remote: Some(fp(1)),
        },
        5,
    );
    (c, accepted)
}

#[test]
fn e2ee_caller_shows_code_only_after_dtls_with_matching_certificates() {
    let c = caller_connected(fp(1), fp(2));
    assert_eq!(c.view().phase, Phase::Connected);
    assert_eq!(c.view().code, security_code(&fp(1), &fp(2)).ok());
    assert_eq!(c.view().connected_at_ms, Some(60));
    assert_eq!(c.view().cert_check, Some(CertCheck::Both));
}

#[test]
fn e2ee_callee_commits_before_seeing_the_offer() {
    let (mut c, out) = Call::incoming(id(), ALICE, CallMode::E2ee, Wish::None, 0);
    assert_eq!(sent(&out), vec![&ClientMsg::Ringing { call_id: id() }]);
    assert_eq!(c.view().phase, Phase::Incoming);
    assert_eq!(
        c.handle(Input::User(UserAction::Accept), 5),
        vec![Output::Pc(PcCommand::Create)]
    );
    let out = c.handle(Input::PeerReady { local: fp(2) }, 10);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Accept {
            call_id: id(),
            commit: Some(Commitment::to(&fp(2)))
        }]
    );
    // A candidate that overtakes the offer waits for the remote description.
    assert!(
        c.handle(
            relay(RelayMsg::Ice {
                call_id: id(),
                candidate: cand(1)
            }),
            15
        )
        .is_empty()
    );
    let out = c.handle(
        relay(RelayMsg::Offer {
            call_id: id(),
            sdp: sdp(&fp(1)),
        }),
        20,
    );
    assert_eq!(
        out,
        vec![
            Output::Pc(PcCommand::AcceptOffer { sdp: sdp(&fp(1)) }),
            Output::Pc(PcCommand::AddIce(cand(1)))
        ]
    );
    // Later candidates go straight in.
    assert_eq!(
        c.handle(
            relay(RelayMsg::Ice {
                call_id: id(),
                candidate: cand(2)
            }),
            21
        ),
        vec![Output::Pc(PcCommand::AddIce(cand(2)))]
    );
    let out = c.handle(Input::LocalAnswer { sdp: sdp(&fp(2)) }, 30);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Answer {
            call_id: id(),
            sdp: sdp(&fp(2))
        }]
    );
    let out = c.handle(Input::LocalIce(cand(9)), 31);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Ice {
            call_id: id(),
            candidate: cand(9)
        }]
    );
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(2)),
            remote: Some(fp(1)),
        },
        40,
    );
    // Both sides compute the same code.
    assert_eq!(c.view().code, caller_connected(fp(1), fp(2)).view().code);
    assert!(c.view().code.is_some());
}

/// The caller makes its certificate, peer connection and offer and gathers its
/// candidates while the call rings, but nothing that names its certificate (the
/// offer) nor its candidates leaves before it holds the callee's commitment;
/// then the offer and the held candidates leave at once, in that order.
#[test]
fn prepared_while_ringing_but_sent_only_after_the_commitment() {
    for mode in [CallMode::E2ee, CallMode::Standard] {
        let mut c = caller_ringing(mode);
        assert_eq!(
            c.handle(Input::PeerReady { local: fp(1) }, 11),
            vec![Output::Pc(PcCommand::CreateOffer)]
        );
        assert!(c.handle(Input::LocalIce(cand(7)), 12).is_empty());
        assert!(
            c.handle(Input::LocalOffer { sdp: sdp(&fp(1)) }, 13)
                .is_empty()
        );
        assert!(c.handle(Input::LocalIce(cand(8)), 14).is_empty());
        assert!(c.handle(Input::Tick, 15).is_empty());
        assert_eq!(c.view().phase, Phase::Ringing);
        let out = c.handle(
            relay(RelayMsg::Accepted {
                call_id: id(),
                commit: Some(Commitment::to(&fp(2))),
            }),
            20,
        );
        assert_eq!(
            sent(&out),
            vec![
                &ClientMsg::Offer {
                    call_id: id(),
                    sdp: sdp(&fp(1))
                },
                &ClientMsg::Ice {
                    call_id: id(),
                    candidate: cand(7)
                },
                &ClientMsg::Ice {
                    call_id: id(),
                    candidate: cand(8)
                },
            ]
        );
        assert_eq!(out.len(), 3, "nothing else: {out:?}");
        // Later candidates go straight out.
        assert_eq!(
            sent(&c.handle(Input::LocalIce(cand(9)), 21)),
            vec![&ClientMsg::Ice {
                call_id: id(),
                candidate: cand(9)
            }]
        );
        // The answer must still open the commitment.
        c.handle(
            relay(RelayMsg::Answer {
                call_id: id(),
                sdp: sdp(&fp(2)),
            }),
            22,
        );
        c.handle(
            Input::DtlsConnected {
                local: Some(fp(1)),
                remote: Some(fp(2)),
            },
            23,
        );
        assert_eq!(c.view().phase, Phase::Connected);
        assert_eq!(c.view().code, security_code(&fp(1), &fp(2)).ok());
    }
}

/// A prepared offer never leaves without a commitment: an `accepted` without one
/// ends the call (and closes the prepared connection); a refusal or a cancel
/// while it rings closes it without sending anything of it.
#[test]
fn a_prepared_offer_never_leaves_without_the_commitment() {
    let mut c = caller_ringing(CallMode::Standard);
    c.handle(Input::PeerReady { local: fp(1) }, 11);
    c.handle(Input::LocalOffer { sdp: sdp(&fp(1)) }, 12);
    let out = c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: None,
        }),
        13,
    );
    assert!(
        sent(&out)
            .iter()
            .all(|m| !matches!(m, ClientMsg::Offer { .. } | ClientMsg::Ice { .. })),
        "{out:?}"
    );
    assert!(out.contains(&Output::Pc(PcCommand::Close)));
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::CommitmentMismatch))
    );

    let mut c = caller_ringing(CallMode::E2ee);
    c.handle(Input::PeerReady { local: fp(1) }, 11);
    c.handle(Input::LocalIce(cand(1)), 12);
    c.handle(Input::LocalOffer { sdp: sdp(&fp(1)) }, 13);
    let out = c.handle(
        relay(RelayMsg::CallRefused {
            call_id: id(),
            peer: BOB.into(),
            reason: RefuseReason::Declined,
            required_by: None,
        }),
        14,
    );
    assert_eq!(out, vec![Output::Pc(PcCommand::Close)]);
    assert!(c.handle(Input::LocalIce(cand(2)), 15).is_empty());
}

#[test]
fn caller_holds_early_candidates_until_the_answer() {
    let mut c = caller_ringing(CallMode::Standard);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: Some(Commitment::to(&fp(2))),
        }),
        1,
    );
    c.handle(Input::PeerReady { local: fp(1) }, 2);
    c.handle(Input::LocalOffer { sdp: sdp(&fp(1)) }, 3);
    assert!(
        c.handle(
            relay(RelayMsg::Ice {
                call_id: id(),
                candidate: cand(1)
            }),
            4
        )
        .is_empty()
    );
    let out = c.handle(
        relay(RelayMsg::Answer {
            call_id: id(),
            sdp: sdp(&fp(2)),
        }),
        5,
    );
    assert_eq!(
        out,
        vec![
            Output::Pc(PcCommand::SetAnswer { sdp: sdp(&fp(2)) }),
            Output::Pc(PcCommand::AddIce(cand(1)))
        ]
    );
}

#[test]
fn commitment_mismatch_ends_the_call_with_the_warning() {
    let mut c = caller_ringing(CallMode::E2ee);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: Some(Commitment::to(&fp(2))),
        }),
        1,
    );
    c.handle(Input::PeerReady { local: fp(1) }, 2);
    c.handle(Input::LocalOffer { sdp: sdp(&fp(1)) }, 3);
    // A man in the middle answers with his own certificate.
    let out = c.handle(
        relay(RelayMsg::Answer {
            call_id: id(),
            sdp: sdp(&fp(3)),
        }),
        4,
    );
    assert_eq!(
        out,
        vec![
            Output::Send(ClientMsg::Hangup {
                call_id: id(),
                reason: HangupReason::Mitm
            }),
            Output::Pc(PcCommand::Close)
        ]
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::CommitmentMismatch))
    );
    assert_eq!(c.view().code, None);
}

#[test]
fn e2ee_accept_without_commitment_is_refused() {
    let mut c = caller_ringing(CallMode::E2ee);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: None,
        }),
        1,
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::CommitmentMismatch))
    );
}

#[test]
fn dtls_certificate_other_than_announced_never_shows_the_lock() {
    let mut c = caller_answered();
    let out = c.handle(
        Input::DtlsConnected {
            local: Some(fp(1)),
            remote: Some(fp(7)),
        },
        5,
    );
    assert!(sent(&out).contains(&&ClientMsg::Hangup {
        call_id: id(),
        reason: HangupReason::Mitm
    }));
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::FingerprintMismatch))
    );
    assert_eq!(c.view().code, None);
}

#[test]
fn browser_without_certificate_stats_relies_on_its_own_check() {
    let mut c = caller_answered();
    assert!(c.handle(Input::DtlsConnectedUnobserved, 5).is_empty());
    assert_eq!(c.view().code, security_code(&fp(1), &fp(2)).ok());
    assert_eq!(c.view().cert_check, Some(CertCheck::BrowserOnly));
}

#[test]
fn remote_certificate_from_the_dtls_transport_must_be_the_announced_one() {
    let mut c = caller_answered();
    assert!(
        c.handle(
            Input::DtlsConnectedRemoteOnly {
                remote: Some(fp(2))
            },
            5
        )
        .is_empty()
    );
    assert_eq!(c.view().code, security_code(&fp(1), &fp(2)).ok());
    assert_eq!(c.view().cert_check, Some(CertCheck::RemoteOnly));

    // The extra-fingerprint man in the middle on a browser that accepts any
    // fingerprint line: DTLS ends at the attacker's certificate.
    let mut c = caller_answered();
    c.handle(
        Input::DtlsConnectedRemoteOnly {
            remote: Some(fp(9)),
        },
        5,
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::FingerprintMismatch))
    );
    assert_eq!(c.view().code, None);
}

/// `sdp(fp)` with a second fingerprint line for another hash (the attacker's).
fn sdp_with_extra_line(fp: &Fingerprint) -> String {
    sdp(fp).replace(
        "a=mid:0\r\n",
        "a=mid:0\r\na=fingerprint:sha-384 0C:8E:31:5C:57:6D:A7:F6:3E:9F:3A:5F:6F:9F:2B:1E:42:90:5D:8C:A0:BA:D2:22:4F:58:8D:93:AD:E9:9D:D0:8B:1B:C4:82:27:12:2F:8C:6C:8B:5D:5A:3A:6F:29:3A\r\n",
    )
}

#[test]
fn an_extra_fingerprint_line_in_the_answer_ends_an_e2ee_call() {
    let mut c = caller_ringing(CallMode::E2ee);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: Some(Commitment::to(&fp(2))),
        }),
        1,
    );
    c.handle(Input::PeerReady { local: fp(1) }, 2);
    c.handle(Input::LocalOffer { sdp: sdp(&fp(1)) }, 3);
    // The real sha-256 line opens the commitment, but a second line is there.
    let out = c.handle(
        relay(RelayMsg::Answer {
            call_id: id(),
            sdp: sdp_with_extra_line(&fp(2)),
        }),
        4,
    );
    assert!(sent(&out).contains(&&ClientMsg::Hangup {
        call_id: id(),
        reason: HangupReason::Unverifiable
    }));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Pc(PcCommand::SetAnswer { .. })))
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::Unverifiable))
    );
}

#[test]
fn an_extra_fingerprint_line_in_a_renegotiation_ends_the_call() {
    for mode in [CallMode::E2ee, CallMode::Standard] {
        let (mut c, _) = callee_connected(mode, Wish::None);
        assert!(c.view().code.is_some(), "{mode:?}");
        let out = c.handle(
            relay(RelayMsg::Offer {
                call_id: id(),
                sdp: sdp_with_extra_line(&fp(1)),
            }),
            6,
        );
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Pc(PcCommand::AcceptOffer { .. }))),
            "{mode:?}: the offer reached the browser"
        );
        assert!(
            matches!(c.view().phase, Phase::Ended(Ending::Mitm(_))),
            "{mode:?}: {:?}",
            c.view().phase
        );
        assert_eq!(c.view().code, None);
    }
}

#[test]
fn missing_dtls_certificate_is_not_verification() {
    let mut c = caller_answered();
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(1)),
            remote: None,
        },
        5,
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::FingerprintMismatch))
    );
}

#[test]
fn fingerprint_change_on_renegotiation_ends_the_call() {
    let (mut c, _) = callee_connected(CallMode::E2ee, Wish::None);
    assert!(c.view().code.is_some());
    // Same fingerprint: a harmless renegotiation.
    let out = c.handle(
        relay(RelayMsg::Offer {
            call_id: id(),
            sdp: sdp(&fp(1)),
        }),
        6,
    );
    assert_eq!(
        out,
        vec![Output::Pc(PcCommand::AcceptOffer { sdp: sdp(&fp(1)) })]
    );
    // A new certificate in the middle of the call.
    let out = c.handle(
        relay(RelayMsg::Offer {
            call_id: id(),
            sdp: sdp(&fp(5)),
        }),
        7,
    );
    assert!(sent(&out).contains(&&ClientMsg::Hangup {
        call_id: id(),
        reason: HangupReason::Mitm
    }));
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::FingerprintChanged))
    );
    assert_eq!(c.view().code, None);
}

#[test]
fn unverifiable_offer_in_e2ee_call_is_refused() {
    let (mut c, _) = Call::incoming(id(), ALICE, CallMode::E2ee, Wish::None, 0);
    c.handle(Input::User(UserAction::Accept), 1);
    c.handle(Input::PeerReady { local: fp(2) }, 2);
    let no_fp =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
            .to_string();
    let out = c.handle(
        relay(RelayMsg::Offer {
            call_id: id(),
            sdp: no_fp,
        }),
        3,
    );
    assert!(sent(&out).contains(&&ClientMsg::Hangup {
        call_id: id(),
        reason: HangupReason::Unverifiable
    }));
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::Unverifiable))
    );
}

/// A standard call from the caller's side up to DTLS, callee certificate fp(2).
fn standard_caller_answered(answer: &str) -> Call {
    let mut c = caller_ringing(CallMode::Standard);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: Some(Commitment::to(&fp(2))),
        }),
        1,
    );
    c.handle(Input::PeerReady { local: fp(1) }, 2);
    c.handle(Input::LocalOffer { sdp: sdp(&fp(1)) }, 3);
    c.handle(
        relay(RelayMsg::Answer {
            call_id: id(),
            sdp: answer.to_string(),
        }),
        4,
    );
    c
}

#[test]
fn standard_call_commits_and_shows_the_code_too() {
    let mut c = standard_caller_answered(&sdp(&fp(2)));
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(1)),
            remote: Some(fp(2)),
        },
        5,
    );
    assert_eq!(c.view().phase, Phase::Connected);
    assert_eq!(c.view().code, security_code(&fp(1), &fp(2)).ok());
    c.handle(Input::User(UserAction::CodesMatch), 6);
    assert!(c.view().verified);
}

#[test]
fn standard_call_checks_the_commitment_and_the_certificates() {
    // An answer that does not open the commitment.
    let c = standard_caller_answered(&sdp(&fp(3)));
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::CommitmentMismatch))
    );
    // A certificate other than the announced one.
    let mut c = standard_caller_answered(&sdp(&fp(2)));
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(1)),
            remote: Some(fp(4)),
        },
        5,
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::FingerprintMismatch))
    );
    // No commitment at all: a relay that strips it.
    let mut c = caller_ringing(CallMode::Standard);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: None,
        }),
        1,
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::CommitmentMismatch))
    );
}

#[test]
fn unverifiable_standard_call_goes_on_without_a_code() {
    let mut c = standard_caller_answered(&sdp_with_extra_line(&fp(2)));
    assert!(c.view().unverifiable);
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(1)),
            remote: Some(fp(2)),
        },
        5,
    );
    assert_eq!(c.view().phase, Phase::Connected);
    assert_eq!(c.view().code, None);
    // "Codes match" means nothing without a code.
    c.handle(Input::User(UserAction::CodesMatch), 6);
    assert!(!c.view().verified);
}

#[test]
fn a_split_mode_still_gives_both_sides_the_same_code() {
    // The relay told the caller `e2ee` and the callee `standard`.
    let caller = caller_connected(fp(1), fp(2));
    let (callee, accepted) = callee_connected(CallMode::Standard, Wish::Switch);
    assert!(sent(&accepted).contains(&&ClientMsg::Accept {
        call_id: id(),
        commit: Some(Commitment::to(&fp(2)))
    }));
    assert!(caller.view().code.is_some());
    assert_eq!(callee.view().code, caller.view().code);
    // The callee's switch is on: it is told the call arrived standard.
    assert_eq!(callee.view().downgraded, Some(Wish::Switch));
}

#[test]
fn a_standard_call_against_the_users_setting_is_flagged() {
    for (wish, expect) in [
        (Wish::None, None),
        (Wish::Switch, Some(Wish::Switch)),
        (Wish::Required, Some(Wish::Required)),
    ] {
        let (c, _) = Call::incoming(id(), ALICE, CallMode::Standard, wish, 0);
        assert_eq!(c.view().downgraded, expect, "incoming, {wish:?}");
        let (c, _) = Call::incoming(id(), ALICE, CallMode::E2ee, wish, 0);
        assert_eq!(c.view().downgraded, None, "incoming e2ee, {wish:?}");
        let (mut c, _) = Call::outgoing(BOB, wish, 0);
        c.handle(
            relay(RelayMsg::Calling {
                call_id: id(),
                to: BOB.into(),
                mode: CallMode::Standard,
            }),
            1,
        );
        assert_eq!(c.view().downgraded, expect, "outgoing, {wish:?}");
    }
}

#[test]
fn codes_match_marks_verified_and_codes_differ_warns() {
    let mut c = caller_connected(fp(1), fp(2));
    c.handle(Input::User(UserAction::CodesMatch), 70);
    assert!(c.view().verified);
    let out = c.handle(Input::User(UserAction::CodesDiffer), 80);
    assert!(sent(&out).contains(&&ClientMsg::Hangup {
        call_id: id(),
        reason: HangupReason::Mitm
    }));
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::CodesDiffer))
    );
}

#[test]
fn peer_reported_mitm_shows_the_warning() {
    let mut c = caller_connected(fp(1), fp(2));
    let out = c.handle(
        relay(RelayMsg::Hangup {
            call_id: id(),
            reason: HangupReason::Mitm,
        }),
        90,
    );
    assert_eq!(out, vec![Output::Pc(PcCommand::Close)]);
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::ReportedByPeer))
    );
}

#[test]
fn decline_and_declined() {
    let (mut callee, _) = Call::incoming(id(), ALICE, CallMode::E2ee, Wish::None, 0);
    let out = callee.handle(Input::User(UserAction::Decline), 1);
    assert_eq!(sent(&out), vec![&ClientMsg::Decline { call_id: id() }]);
    assert_eq!(callee.view().phase, Phase::Ended(Ending::Declined));

    let mut caller = caller_ringing(CallMode::E2ee);
    caller.handle(
        relay(RelayMsg::CallRefused {
            call_id: id(),
            peer: BOB.into(),
            reason: RefuseReason::Declined,
            required_by: None,
        }),
        2,
    );
    assert_eq!(caller.view().phase, Phase::Ended(Ending::Declined));
}

#[test]
fn cancel_before_answer() {
    let mut caller = caller_ringing(CallMode::Standard);
    let out = caller.handle(Input::User(UserAction::Hangup), 5);
    // The peer connection made while ringing closes with it.
    assert_eq!(
        out,
        vec![
            Output::Send(ClientMsg::Cancel { call_id: id() }),
            Output::Pc(PcCommand::Close)
        ]
    );
    assert_eq!(caller.view().phase, Phase::Ended(Ending::Cancelled));

    let (mut callee, _) = Call::incoming(id(), ALICE, CallMode::Standard, Wish::None, 0);
    assert!(
        callee
            .handle(relay(RelayMsg::Cancelled { call_id: id() }), 6)
            .is_empty()
    );
    assert_eq!(callee.view().phase, Phase::Ended(Ending::Cancelled));
}

#[test]
fn busy_offline_and_e2ee_required_refusals() {
    for (reason, required_by) in [
        (RefuseReason::Busy, None),
        (RefuseReason::Offline, None),
        (RefuseReason::E2eeRequired, Some(ALICE.to_string())),
        (RefuseReason::NotAllowed, None),
    ] {
        let (mut c, _) = Call::outgoing(BOB, Wish::None, 0);
        let msg = RelayMsg::CallRefused {
            call_id: id(),
            peer: BOB.into(),
            reason,
            required_by: required_by.clone(),
        };
        assert!(c.concerns(&msg));
        assert!(c.handle(relay(msg), 1).is_empty());
        assert_eq!(
            c.view().phase,
            Phase::Ended(Ending::Refused {
                reason,
                required_by
            })
        );
    }
}

#[test]
fn ring_timeout_cancels() {
    let mut c = caller_ringing(CallMode::E2ee);
    assert!(c.handle(Input::Tick, RING_TIMEOUT_MS - 1).is_empty());
    let out = c.handle(Input::Tick, RING_TIMEOUT_MS + 10);
    assert_eq!(
        out,
        vec![
            Output::Send(ClientMsg::Cancel { call_id: id() }),
            Output::Pc(PcCommand::Close)
        ]
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Refused {
            reason: RefuseReason::NoAnswer,
            required_by: None
        })
    );
}

#[test]
fn connect_timeout_gives_up() {
    let mut c = caller_ringing(CallMode::Standard);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: Some(Commitment::to(&fp(2))),
        }),
        100,
    );
    let out = c.handle(Input::Tick, 100 + CONNECT_TIMEOUT_MS);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Hangup {
            call_id: id(),
            reason: HangupReason::ConnectionFailed
        }]
    );
    assert_eq!(c.view().phase, Phase::Ended(Ending::ConnectionFailed));
}

#[test]
fn answered_elsewhere_stops_ringing() {
    let (mut c, _) = Call::incoming(id(), ALICE, CallMode::E2ee, Wish::None, 0);
    assert!(
        c.handle(relay(RelayMsg::AnsweredElsewhere { call_id: id() }), 3)
            .is_empty()
    );
    assert_eq!(c.view().phase, Phase::Ended(Ending::AnsweredElsewhere));
}

#[test]
fn dtls_failure_ends_the_call() {
    let mut c = caller_ringing(CallMode::E2ee);
    c.handle(
        relay(RelayMsg::Accepted {
            call_id: id(),
            commit: Some(Commitment::to(&fp(2))),
        }),
        1,
    );
    c.handle(Input::PeerReady { local: fp(1) }, 2);
    let out = c.handle(Input::PcFailed, 3);
    assert_eq!(
        out,
        vec![
            Output::Send(ClientMsg::Hangup {
                call_id: id(),
                reason: HangupReason::ConnectionFailed
            }),
            Output::Pc(PcCommand::Close)
        ]
    );
    assert_eq!(c.view().phase, Phase::Ended(Ending::ConnectionFailed));
}

#[test]
fn relay_reconnect_keeps_the_call() {
    let mut c = caller_connected(fp(1), fp(2));
    let code = c.view().code;
    assert!(c.handle(Input::RelayDown, 100).is_empty());
    assert!(c.view().relay_down);
    assert_eq!(c.view().phase, Phase::Connected);
    assert_eq!(c.view().code, code);
    let out = c.handle(Input::RelayUp, 200);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Resume {
            call_id: id(),
            peer: BOB.into(),
            mode: CallMode::E2ee
        }],
        "the device re-attaches to its call"
    );
    assert!(!c.view().relay_down);
    let out = c.handle(Input::User(UserAction::Hangup), 300);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Hangup {
            call_id: id(),
            reason: HangupReason::Normal
        }]
    );
}

#[test]
fn relay_reconnect_while_ringing_does_not_resume() {
    let mut c = caller_ringing(CallMode::E2ee);
    c.handle(Input::RelayDown, 1);
    assert!(c.handle(Input::RelayUp, 2).is_empty());
}

#[test]
fn messages_for_other_calls_are_not_ours_and_ended_calls_ignore_input() {
    let mut c = caller_ringing(CallMode::E2ee);
    assert!(!c.concerns(&RelayMsg::Cancelled {
        call_id: CallId("other".into())
    }));
    assert!(c.concerns(&RelayMsg::Cancelled { call_id: id() }));
    c.handle(Input::User(UserAction::Hangup), 1);
    assert!(
        c.handle(
            relay(RelayMsg::Accepted {
                call_id: id(),
                commit: None
            }),
            2
        )
        .is_empty()
    );
    assert!(
        c.handle(
            Input::DtlsConnected {
                local: Some(fp(1)),
                remote: Some(fp(2))
            },
            3
        )
        .is_empty()
    );
    assert_eq!(c.view().code, None);
}

fn hold_state(by_me: bool, by_peer: bool) -> Input {
    relay(RelayMsg::Hold {
        call_id: id(),
        by_me,
        by_peer,
    })
}

#[test]
fn hold_asks_the_relay_and_stops_sending_only_on_its_word() {
    let (mut c, _) = callee_connected(CallMode::Standard, Wish::None);
    assert_eq!(c.view().phase, Phase::Connected);
    let out = c.handle(Input::User(UserAction::Hold), 10);
    assert_eq!(
        out,
        vec![Output::Send(ClientMsg::Hold {
            call_id: id(),
            on: true
        })]
    );
    assert!(c.view().hold_pending);
    // A second press while the relay has not answered sends nothing.
    assert!(c.handle(Input::User(UserAction::Hold), 11).is_empty());
    assert!(
        !c.view().hold.any(),
        "nothing is held before the relay says so"
    );
    assert_eq!(
        c.handle(hold_state(true, false), 12),
        vec![Output::Pc(PcCommand::SetSending(false))]
    );
    assert!(!c.view().hold_pending);
    // The peer holds too: still held, nothing to change.
    assert!(c.handle(hold_state(true, true), 13).is_empty());
    // Letting go of my hold while the peer holds keeps media stopped.
    assert_eq!(
        sent(&c.handle(Input::User(UserAction::Unhold), 14)),
        vec![&ClientMsg::Hold {
            call_id: id(),
            on: false
        }]
    );
    assert!(c.handle(hold_state(false, true), 15).is_empty());
    assert_eq!(
        c.view().hold,
        HoldState {
            by_me: false,
            by_peer: true
        }
    );
    // Unhold when I do not hold sends nothing.
    assert!(c.handle(Input::User(UserAction::Unhold), 16).is_empty());
    assert_eq!(
        c.handle(hold_state(false, false), 17),
        vec![Output::Pc(PcCommand::SetSending(true))]
    );
    // The code and the phase are untouched by hold.
    assert_eq!(c.view().phase, Phase::Connected);
    assert!(c.view().code.is_some());
}

#[test]
fn a_refused_hold_clears_the_pending_state() {
    let (mut c, _) = callee_connected(CallMode::Standard, Wish::None);
    c.handle(Input::User(UserAction::Hold), 10);
    assert!(c.view().hold_pending);
    c.handle(
        relay(RelayMsg::Error {
            code: shieldcall_proto::ErrorCode::WrongState,
            message: "no".into(),
            call_id: Some(id()),
        }),
        11,
    );
    assert!(!c.view().hold_pending);
    assert!(!c.view().hold.any());
    assert_eq!(c.view().phase, Phase::Connected);
}

#[test]
fn an_e2ee_call_never_asks_for_hold_and_ignores_a_hold_state() {
    let (mut c, _) = callee_connected(CallMode::E2ee, Wish::Switch);
    assert!(c.handle(Input::User(UserAction::Hold), 10).is_empty());
    assert!(!c.view().hold_pending);
    // A relay that says otherwise cannot stop an E2EE call's media.
    assert!(c.handle(hold_state(false, true), 11).is_empty());
    assert!(!c.view().hold.any());
}

#[test]
fn hold_is_not_asked_before_the_call_is_connected() {
    let mut c = caller_ringing(CallMode::Standard);
    assert!(c.handle(Input::User(UserAction::Hold), 20).is_empty());
    let (mut c, _) = Call::incoming(id(), ALICE, CallMode::Standard, Wish::None, 0);
    assert!(c.handle(Input::User(UserAction::Hold), 1).is_empty());
}

#[test]
fn taking_a_call_over_commits_with_move_here_and_answers_the_fresh_offer() {
    let (mut c, out) = Call::take_over(id(), ALICE, CallMode::Standard, Wish::None, 0);
    assert_eq!(out, vec![Output::Pc(PcCommand::Create)]);
    assert_eq!(c.view().phase, Phase::Connecting);
    let out = c.handle(Input::PeerReady { local: fp(3) }, 1);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::MoveHere {
            call_id: id(),
            commit: Some(Commitment::to(&fp(3)))
        }]
    );
    let out = c.handle(
        relay(RelayMsg::Offer {
            call_id: id(),
            sdp: sdp(&fp(1)),
        }),
        2,
    );
    assert!(matches!(
        out.as_slice(),
        [Output::Pc(PcCommand::AcceptOffer { .. })]
    ));
    c.handle(Input::LocalAnswer { sdp: sdp(&fp(3)) }, 3);
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(3)),
            remote: Some(fp(1)),
        },
        4,
    );
    assert_eq!(c.view().phase, Phase::Connected);
    assert_eq!(c.view().code, security_code(&fp(1), &fp(3)).ok());
    assert!(!c.view().verified);
}

#[test]
fn a_refused_move_ends_only_the_attempt() {
    let (mut c, _) = Call::take_over(id(), ALICE, CallMode::Standard, Wish::None, 0);
    c.handle(Input::PeerReady { local: fp(3) }, 1);
    let out = c.handle(
        relay(RelayMsg::Error {
            code: shieldcall_proto::ErrorCode::UnavailableInE2ee,
            message: "no".into(),
            call_id: Some(id()),
        }),
        2,
    );
    assert_eq!(c.view().phase, Phase::Ended(Ending::NotMoved));
    // Only the attempt's own peer connection closes; nothing is sent.
    assert_eq!(out, vec![Output::Pc(PcCommand::Close)]);
}

#[test]
fn the_device_a_call_moved_from_ends_it_quietly() {
    let (mut c, _) = callee_connected(CallMode::Standard, Wish::None);
    let out = c.handle(
        relay(RelayMsg::Hangup {
            call_id: id(),
            reason: HangupReason::Moved,
        }),
        10,
    );
    assert_eq!(c.view().phase, Phase::Ended(Ending::Moved));
    assert_eq!(out, vec![Output::Pc(PcCommand::Close)]);
}

#[test]
fn a_new_leg_checks_the_new_devices_commitment_and_computes_a_new_code() {
    // Alice's side after Bob moved: fresh certificate fp(4), Bob's new device
    // committed to fp(3).
    let (mut c, out) = Call::new_leg(
        id(),
        BOB,
        CallMode::Standard,
        Commitment::to(&fp(3)),
        Wish::None,
        0,
    );
    assert_eq!(out, vec![Output::Pc(PcCommand::Create)]);
    assert_eq!(
        c.handle(Input::PeerReady { local: fp(4) }, 1),
        vec![Output::Pc(PcCommand::CreateOffer)]
    );
    c.handle(Input::LocalOffer { sdp: sdp(&fp(4)) }, 2);
    c.handle(
        relay(RelayMsg::Answer {
            call_id: id(),
            sdp: sdp(&fp(3)),
        }),
        3,
    );
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(4)),
            remote: Some(fp(3)),
        },
        4,
    );
    assert_eq!(c.view().code, security_code(&fp(4), &fp(3)).ok());
    assert!(!c.view().verified);

    // An answer from a device other than the committed one is an attack.
    let (mut c, _) = Call::new_leg(
        id(),
        BOB,
        CallMode::Standard,
        Commitment::to(&fp(3)),
        Wish::None,
        0,
    );
    c.handle(Input::PeerReady { local: fp(4) }, 1);
    c.handle(Input::LocalOffer { sdp: sdp(&fp(4)) }, 2);
    c.handle(
        relay(RelayMsg::Answer {
            call_id: id(),
            sdp: sdp(&fp(9)),
        }),
        3,
    );
    assert_eq!(
        c.view().phase,
        Phase::Ended(Ending::Mitm(Warning::CommitmentMismatch))
    );
}

#[test]
fn parking_ends_this_devices_part_and_the_other_side_waits() {
    // Bob (callee here) parks.
    let (mut bob, _) = callee_connected(CallMode::Standard, Wish::None);
    assert_eq!(
        sent(&bob.handle(Input::User(UserAction::Park), 10)),
        vec![&ClientMsg::Park { call_id: id() }]
    );
    let out = bob.handle(
        relay(RelayMsg::Parked {
            call_id: id(),
            code: 42,
        }),
        11,
    );
    assert_eq!(bob.view().phase, Phase::Ended(Ending::Parked { code: 42 }));
    assert_eq!(out, vec![Output::Pc(PcCommand::Close)]);

    // Alice waits on park: no peer connection, no code, and may hang up.
    let (mut alice, _) = callee_connected(CallMode::Standard, Wish::None);
    let out = alice.handle(
        relay(RelayMsg::OnPark {
            call_id: id(),
            code: 42,
        }),
        12,
    );
    assert_eq!(out, vec![Output::Pc(PcCommand::Close)]);
    assert_eq!(alice.view().phase, Phase::Parked);
    assert_eq!(alice.view().parked, Some(42));
    assert_eq!(alice.view().code, None);
    // A reconnect while parked re-attaches to the call.
    alice.handle(Input::RelayDown, 13);
    assert!(matches!(
        sent(&alice.handle(Input::RelayUp, 14)).as_slice(),
        [ClientMsg::Resume { .. }]
    ));
    // Nobody picks up.
    alice.handle(
        relay(RelayMsg::Hangup {
            call_id: id(),
            reason: HangupReason::NotPickedUp,
        }),
        15,
    );
    assert_eq!(alice.view().phase, Phase::Ended(Ending::NotPickedUp));
}

#[test]
fn the_person_waiting_on_park_may_hang_up() {
    let (mut alice, _) = callee_connected(CallMode::Standard, Wish::None);
    alice.handle(
        relay(RelayMsg::OnPark {
            call_id: id(),
            code: 17,
        }),
        1,
    );
    let out = alice.handle(Input::User(UserAction::Hangup), 2);
    assert!(sent(&out).contains(&&ClientMsg::Hangup {
        call_id: id(),
        reason: HangupReason::Normal
    }));
    assert_eq!(
        alice.view().phase,
        Phase::Ended(Ending::HungUp { by_me: true })
    );
}

#[test]
fn an_e2ee_call_never_asks_to_park_and_ignores_a_park() {
    let (mut c, _) = callee_connected(CallMode::E2ee, Wish::Switch);
    assert!(c.handle(Input::User(UserAction::Park), 1).is_empty());
    assert!(
        c.handle(
            relay(RelayMsg::OnPark {
                call_id: id(),
                code: 17
            }),
            2
        )
        .is_empty()
    );
    assert_eq!(c.view().phase, Phase::Connected);
}

#[test]
fn a_pickup_commits_first_then_learns_the_call_and_answers() {
    let (mut c, out) = Call::pick_up(42, Wish::None, 0);
    assert_eq!(out, vec![Output::Pc(PcCommand::Create)]);
    assert!(c.awaits_pickup());
    assert_eq!(
        sent(&c.handle(Input::PeerReady { local: fp(5) }, 1)),
        vec![&ClientMsg::Pickup {
            code: 42,
            commit: Some(Commitment::to(&fp(5)))
        }]
    );
    let picked = RelayMsg::PickedUp {
        call_id: id(),
        code: 42,
        peer: ALICE.into(),
        mode: CallMode::Standard,
    };
    assert!(c.concerns(&picked));
    c.handle(relay(picked), 2);
    assert!(!c.awaits_pickup());
    assert_eq!(c.view().peer, ALICE);
    assert!(matches!(
        c.handle(
            relay(RelayMsg::Offer {
                call_id: id(),
                sdp: sdp(&fp(1)),
            }),
            3
        )
        .as_slice(),
        [Output::Pc(PcCommand::AcceptOffer { .. })]
    ));
    c.handle(Input::LocalAnswer { sdp: sdp(&fp(5)) }, 4);
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(5)),
            remote: Some(fp(1)),
        },
        5,
    );
    assert_eq!(c.view().code, security_code(&fp(1), &fp(5)).ok());

    // A refused pickup ends the attempt.
    let (mut c, _) = Call::pick_up(43, Wish::None, 0);
    c.handle(Input::PeerReady { local: fp(5) }, 1);
    c.handle(
        relay(RelayMsg::Error {
            code: shieldcall_proto::ErrorCode::NotYourCall,
            message: "No call is parked under 43.".into(),
            call_id: None,
        }),
        2,
    );
    assert_eq!(c.view().phase, Phase::Ended(Ending::PickupFailed));
}

#[test]
fn a_transfer_is_asked_in_a_standard_call_and_ends_with_the_relays_word() {
    let (mut bob, _) = callee_connected(CallMode::Standard, Wish::None);
    assert_eq!(
        sent(&bob.handle(Input::TransferTo("carol@example.test".into()), 10)),
        vec![&ClientMsg::Transfer {
            call_id: id(),
            to: "carol@example.test".into()
        }]
    );
    assert_eq!(
        bob.view().phase,
        Phase::Connected,
        "nothing ends before the relay says so"
    );
    bob.handle(
        relay(RelayMsg::Hangup {
            call_id: id(),
            reason: HangupReason::Transferred,
        }),
        11,
    );
    assert_eq!(bob.view().phase, Phase::Ended(Ending::Transferred));
    // In an E2EE call the machine never asks.
    let (mut c, _) = callee_connected(CallMode::E2ee, Wish::Switch);
    assert!(
        c.handle(Input::TransferTo("carol@example.test".into()), 1)
            .is_empty()
    );
}

#[test]
fn a_refer_ends_the_call_and_the_next_invite_carries_its_token() {
    let (mut alice, _) = callee_connected(CallMode::Standard, Wish::None);
    let out = alice.handle(
        relay(RelayMsg::Refer {
            call_id: id(),
            to: "carol@example.test".into(),
            by: BOB.into(),
            token: "t0".into(),
        }),
        10,
    );
    assert_eq!(out, vec![Output::Pc(PcCommand::Close)]);
    assert_eq!(
        alice.view().phase,
        Phase::Ended(Ending::Referred {
            to: "carol@example.test".into()
        })
    );
    let (_, out) = Call::outgoing_transfer("carol@example.test", "t0".into(), Wish::None, 11);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Invite {
            to: "carol@example.test".into(),
            transfer: Some("t0".into())
        }]
    );
    // The callee's ringing screen says who transferred the caller.
    let (c, _) = Call::incoming(id(), ALICE, CallMode::Standard, Wish::None, 0);
    let c = c.referred_by(Some(BOB.into()));
    assert_eq!(c.view().referred_by.as_deref(), Some(BOB));
}

#[test]
fn a_consultation_is_an_outgoing_call_that_names_the_held_one() {
    let held = CallId("held".into());
    let (mut c, out) = Call::outgoing_consult(BOB, held.clone(), Wish::None, 0);
    assert_eq!(
        sent(&out),
        vec![&ClientMsg::Consult {
            call_id: held.clone(),
            to: BOB.into()
        }]
    );
    assert_eq!(c.consult_of(), Some(&held));
    let calling = RelayMsg::Calling {
        call_id: id(),
        to: BOB.into(),
        mode: CallMode::Standard,
    };
    assert!(c.concerns(&calling));
    // From here it runs as any call: it rings and prepares, commitment first.
    assert_eq!(
        c.handle(relay(calling), 1),
        vec![Output::Pc(PcCommand::Create)]
    );
    assert_eq!(c.view().phase, Phase::Ringing);
    assert_eq!(
        Call::outgoing(BOB, Wish::None, 0).0.consult_of(),
        None,
        "an ordinary call consults about nothing"
    );
}

/// Bob joined this call (`id()`) with his held call with Alice.
fn replaced() -> RelayMsg {
    RelayMsg::Replaced {
        call_id: id(),
        join: CallId("held".into()),
        peer: ALICE.into(),
        by: BOB.into(),
        mode: CallMode::Standard,
    }
}

#[test]
fn a_replaced_call_ends_and_the_join_commits_before_the_fresh_offer() {
    let (mut carol, _) = callee_connected(CallMode::Standard, Wish::None);
    let out = carol.handle(relay(replaced()), 10);
    assert_eq!(out, vec![Output::Pc(PcCommand::Close)]);
    assert_eq!(
        carol.view().phase,
        Phase::Ended(Ending::Replaced { peer: ALICE.into() })
    );

    let held = CallId("held".into());
    let (mut c, out) = Call::join(
        held.clone(),
        ALICE,
        CallMode::Standard,
        Some(BOB.into()),
        Wish::None,
        11,
    );
    assert_eq!(out, vec![Output::Pc(PcCommand::Create)]);
    assert_eq!(c.view().referred_by.as_deref(), Some(BOB));
    // The commitment leaves with `join`, before Alice's fresh offer is seen.
    assert_eq!(
        sent(&c.handle(Input::PeerReady { local: fp(7) }, 12)),
        vec![&ClientMsg::Join {
            call_id: held.clone(),
            commit: Some(Commitment::to(&fp(7)))
        }]
    );
    assert!(matches!(
        c.handle(
            relay(RelayMsg::Offer {
                call_id: held.clone(),
                sdp: sdp(&fp(1)),
            }),
            13
        )
        .as_slice(),
        [Output::Pc(PcCommand::AcceptOffer { .. })]
    ));
    c.handle(Input::LocalAnswer { sdp: sdp(&fp(7)) }, 14);
    c.handle(
        Input::DtlsConnected {
            local: Some(fp(7)),
            remote: Some(fp(1)),
        },
        15,
    );
    assert_eq!(c.view().code, security_code(&fp(1), &fp(7)).ok());
    assert!(!c.view().verified, "a new pair has not compared codes yet");

    // A join the relay refuses ends only the attempt.
    let (mut c, _) = Call::join(
        held,
        ALICE,
        CallMode::Standard,
        Some(BOB.into()),
        Wish::None,
        0,
    );
    c.handle(Input::PeerReady { local: fp(7) }, 1);
    c.handle(
        relay(RelayMsg::Error {
            code: shieldcall_proto::ErrorCode::NotYourCall,
            message: "You are not part of this call.".into(),
            call_id: Some(CallId("held".into())),
        }),
        2,
    );
    assert_eq!(c.view().phase, Phase::Ended(Ending::NotJoined));
}

#[test]
fn an_e2ee_call_ignores_a_replaced() {
    let (mut c, _) = callee_connected(CallMode::E2ee, Wish::Switch);
    let out = c.handle(relay(replaced()), 10);
    assert!(out.is_empty());
    assert_eq!(c.view().phase, Phase::Connected);
}
