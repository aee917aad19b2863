//! Recording a standard call in two browsers: Alice records from the features
//! menu; both see the banner; Bob's browser sends nothing until he allows it;
//! after about 4 s Alice stops. Each side is a WebM file that both of them find
//! in their list, that plays in a `<video>` for at least 3 s with a picture,
//! and whose sound (decoded by the browser's Web Audio) is not silence. In an
//! end-to-end encrypted call "Record" is greyed and no connection to the
//! server is ever made.

use std::time::Duration;

use serde_json::Value;
use shieldcall_e2e::{Browser, e2ee_call_greys, standard_call_asking, with_alice_and_bob};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

/// Loads recording `id` in a muted `<video>` and decodes its sound: returns
/// (duration in s, video width, RMS of the sound).
async fn inspect(b: &Browser, id: &str) -> anyhow::Result<(f64, f64, f64)> {
    let v = b
        .client
        .execute_async(
            "const [id, done] = [arguments[0], arguments[arguments.length - 1]];\
             const url = '/api/recordings/' + id;\
             const v = document.createElement('video'); v.muted = true; v.src = url;\
             document.body.appendChild(v);\
             const pic = new Promise(ok => v.addEventListener('loadeddata', ok, { once: true }));\
             v.play().catch(() => {});\
             Promise.all([pic, fetch(url).then(r => r.arrayBuffer())])\
               .then(([, buf]) => new AudioContext().decodeAudioData(buf))\
               .then(audio => { const d = audio.getChannelData(0); let s = 0;\
                 for (let i = 0; i < d.length; i++) s += d[i] * d[i];\
                 done([v.duration, v.videoWidth, Math.sqrt(s / Math.max(1, d.length))]); })\
               .catch(e => done(String(e)));",
            vec![Value::from(id)],
        )
        .await?;
    let n = |i: usize| v.get(i).and_then(Value::as_f64);
    match (n(0), n(1), n(2)) {
        (Some(d), Some(w), Some(rms)) => Ok((d, w, rms)),
        _ => anyhow::bail!("{}: recording {id}: {v}", b.name),
    }
}

/// The ids of the recordings `b` lists, once there are `n`.
async fn listed(b: &Browser, n: usize) -> anyhow::Result<Vec<String>> {
    b.wait_js(
        &format!("{n} recordings listed"),
        "return document.querySelectorAll('[data-testid=\"recording-item\"]').length === arguments[0];",
        vec![Value::from(n)],
    )
    .await?;
    let ids = b
        .client
        .execute(
            "return [...document.querySelectorAll('[data-testid=\"recording-item\"]')].map(e => e.dataset.id);",
            vec![],
        )
        .await?;
    Ok(ids
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

#[tokio::test]
async fn a_recorded_call_plays_back_for_both_with_picture_and_sound() -> anyhow::Result<()> {
    with_alice_and_bob("recording", async |relay, alice, bob| {

        // An E2EE call first: "Record" is greyed, with the reason.
        e2ee_call_greys(alice, bob, BOB, "recording").await?;

        // A standard call (Alice's switch off), recorded.
        let before =
            standard_call_asking(alice, bob, (ALICE, BOB), "recording", "recording").await?;
        // Nothing of Bob's goes anywhere before he allows it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        anyhow::ensure!(bob.peer_connections().await? == before, "Bob's leg before he agreed");
        bob.click("recording-allow").await?;
        bob.wait_visible("recording-stop").await?;
        anyhow::ensure!(bob.peer_connections().await? == before + 1);
        tokio::time::sleep(Duration::from_millis(4500)).await;
        alice.click("recording-stop").await?;
        for b in [&alice, &bob] {
            b.wait_js(
                "the banner gone",
                "const e = document.querySelector('[data-testid=\"recording-banner\"]'); return !!e && e.hidden;",
                vec![],
            )
            .await?;
        }

        // Both sides listed for both, each playable with picture and sound.
        let ids = listed(alice, 2).await?;
        let mut theirs = listed(bob, 2).await?;
        let mut mine = ids.clone();
        mine.sort();
        theirs.sort();
        anyhow::ensure!(mine == theirs, "{mine:?} {theirs:?}");
        for id in &ids {
            let (duration, width, rms) = inspect(alice, id).await?;
            anyhow::ensure!(duration >= 3.0 && duration.is_finite(), "{id}: {duration} s");
            anyhow::ensure!(width > 0.0, "{id}: no picture");
            anyhow::ensure!(rms > 0.0, "{id}: silence");
        }
        // The organisation turns recording off (with the CLI, in another
        // process): the next recording is refused, and Alice is told why.
        relay.cli(
            &["tenant", "calling-policy", "example.test", "--allow-recording", "false"],
            None,
        )?;
        tokio::time::sleep(Duration::from_millis(600)).await; // the relay's poll: 250 ms
        alice.click("feature-recording").await?;
        alice
            .wait_js(
                "the refusal, with its reason",
                "const n = document.querySelector('[data-testid=\"notice-text\"]'); \
                 return !!n && n.textContent.includes('calling policy');",
                vec![],
            )
            .await?;
        anyhow::ensure!(bob.peer_connections().await? == before + 1, "a leg after the refusal");
        alice.click("hangup").await?;
        bob.wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_declined_caller_leaves_a_voicemail_the_callee_plays() -> anyhow::Result<()> {
    with_alice_and_bob("voicemail", async |_relay, alice, bob| {
        // Voicemail goes to the server: their calls must be standard.
        alice.turn_e2ee_off().await?;
        alice.click(&format!("call-{BOB}")).await?;
        bob.click("incoming-decline").await?;
        alice.click("voicemail-leave").await?;
        alice.wait_visible("recording-stop").await?;
        let line = alice.text("recording-text").await?;
        anyhow::ensure!(line.contains("voicemail") && line.contains(BOB), "{line:?}");
        // Speak for about 3 s (the fake microphone's tone), then stop.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        alice.click("recording-stop").await?;
        bob.wait_js(
            "the voicemail notice",
            "const e = document.querySelector('[data-testid=\"notice-text\"]'); return !!e && e.textContent.includes('left you a voicemail');",
            vec![],
        )
        .await?;
        let ids = listed(bob, 1).await?;
        let (duration, width, rms) = inspect(bob, &ids[0]).await?;
        anyhow::ensure!(
            (2.5..10.0).contains(&duration),
            "the message lasts {duration} s"
        );
        anyhow::ensure!(width > 0.0 && rms > 0.0, "picture {width}, sound {rms}");
        anyhow::ensure!(listed(alice, 1).await? == ids, "Alice lists her message");
        Ok(())
    })
    .await
}
