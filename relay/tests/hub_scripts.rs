//! The fuzz harness of the hub (`shieldcall_relay::fuzzing::hub_messages`) on
//! scripts written by hand that reach consult transfer, merge and group calls,
//! so the harness's own invariants (every frame decodes, a message about a call
//! reaches only its people, nobody is left busy) run on those paths in every
//! test run, not only under the fuzzer.

use shieldcall_relay::fuzzing::hub_messages;

/// One step of a script: `kind` (the decision to force: 2 is standard),
/// the device slot (0–1 alice, 2–3 bob, 4 carol, 5 dave) and a client frame.
fn say(script: &mut Vec<u8>, kind: u8, slot: u8, frame: &str) {
    script.push((kind << 4) | slot);
    script.extend_from_slice(frame.as_bytes());
    script.push(b'\n');
}

/// Reads every device's outbox, checking what the hub queued.
fn drain_all(script: &mut Vec<u8>) {
    for slot in 0..6 {
        script.push(0xa0 | slot);
        script.push(b'\n');
    }
}

/// Time goes on by `secs` seconds.
fn wait(script: &mut Vec<u8>, secs: u8) {
    script.extend_from_slice(&[0xc0, secs, b'\n']);
}

const COMMIT: &str = "8539b5720e784316dae00fea08435fc10f6814c4074565541dfb06c0f5d58115";

fn accept(id: &str) -> String {
    format!(r#"{{"type":"accept","call_id":"{id}","commit":"{COMMIT}"}}"#)
}

/// Bob calls Alice, she answers, he holds and consults Dave, who answers.
fn consulting() -> Vec<u8> {
    let mut s = vec![0];
    say(&mut s, 2, 2, r#"{"type":"invite","to":"alice@a.example"}"#);
    say(&mut s, 0, 0, &accept("c0"));
    say(&mut s, 0, 2, r#"{"type":"hold","call_id":"c0","on":true}"#);
    say(
        &mut s,
        2,
        2,
        r#"{"type":"consult","call_id":"c0","to":"dave@c.example"}"#,
    );
    say(&mut s, 0, 5, &accept("c1"));
    drain_all(&mut s);
    s
}

#[test]
fn a_consult_transfer_and_its_join_timeout() {
    let mut s = consulting();
    say(
        &mut s,
        2,
        2,
        r#"{"type":"consult-transfer","call_id":"c0","consult":"c1"}"#,
    );
    drain_all(&mut s);
    // Dave never joins: the join timeout ends the call.
    wait(&mut s, 20);
    drain_all(&mut s);
    hub_messages(&s);
}

#[test]
fn a_merge_then_people_leave() {
    let mut s = consulting();
    say(
        &mut s,
        2,
        2,
        r#"{"type":"merge","call_id":"c0","consult":"c1"}"#,
    );
    drain_all(&mut s);
    // Alice adds Carol to the group (c2), who answers; then Bob leaves.
    say(
        &mut s,
        2,
        0,
        r#"{"type":"add","call_id":"c0","to":"carol@b.example"}"#,
    );
    say(&mut s, 0, 4, &accept("c2"));
    drain_all(&mut s);
    say(
        &mut s,
        0,
        2,
        r#"{"type":"hangup","call_id":"c0","reason":"normal"}"#,
    );
    say(
        &mut s,
        0,
        2,
        r#"{"type":"hangup","call_id":"c1","reason":"normal"}"#,
    );
    drain_all(&mut s);
    // Devices come and go; every timer runs out.
    s.extend_from_slice(&[0x84, b'\n', 0x94, b'\n']);
    wait(&mut s, 60);
    drain_all(&mut s);
    hub_messages(&s);
}

#[test]
fn an_add_declined_and_an_add_refused() {
    let mut s = vec![1];
    say(&mut s, 2, 0, r#"{"type":"invite","to":"bob@a.example"}"#);
    say(&mut s, 0, 2, &accept("c0"));
    say(
        &mut s,
        2,
        2,
        r#"{"type":"add","call_id":"c0","to":"dave@c.example"}"#,
    );
    say(&mut s, 0, 5, r#"{"type":"decline","call_id":"c1"}"#);
    // A decision that makes a pair E2EE refuses the add.
    say(
        &mut s,
        1,
        2,
        r#"{"type":"add","call_id":"c0","to":"carol@b.example"}"#,
    );
    drain_all(&mut s);
    hub_messages(&s);
}
