"""Shieldcall's live-captions recogniser, a child process of the relay.

PocketSphinx (CMU, BSD-2-Clause; the PyPI package pocketsphinx 5.1.1 ships
its US English acoustic model, language model and dictionary) turns 16 kHz
mono speech into words, offline: no sound leaves the machine.

Input, on stdin, frames of: stream (u32 LE), length (u32 LE), then `length`
bytes of 16-bit LE PCM at 16 kHz. Length 0 closes the stream.
Output, on stdout, one JSON object a line:
  {"ready": true}                                  once the model is loaded
  {"stream": n, "text": "...", "final": false}      a partial caption
  {"stream": n, "text": "...", "final": true}       an utterance's caption
  {"stream": n, "closed": true}                     after the stream's last caption
Errors go to stderr; the relay restarts the process if it ends.

Each stream has its own voice-activity endpointer (cheap); a recogniser
(about 90 MB: the language model) is taken from a pool at the start of an
utterance and given back at its end, so people who do not speak at once
share one. The pool holds at most MAX_DECODERS; an utterance that finds none
free is not captioned (said on stderr).
"""

import json
import struct
import sys

from pocketsphinx import Decoder, Endpointer

# At most this many utterances are recognised at once (each recogniser holds
# the language model, about 90 MB).
MAX_DECODERS = int(sys.argv[1]) if len(sys.argv) > 1 else 4
# A partial caption at most this often, in seconds of speech.
PARTIAL_EVERY = 0.25
# An utterance is cut here, so a caption never waits on an endless one.
MAX_UTTERANCE = 15.0
# The largest frame the relay sends (10 s of PCM); a larger one is an error.
MAX_FRAME = 16000 * 2 * 10


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Pool:
    def __init__(self, size):
        self.free = []
        self.made = 0
        self.size = size

    def take(self):
        if self.free:
            return self.free.pop()
        if self.made < self.size:
            self.made += 1
            # No second "flat" pass at the end of an utterance: it cost 155 ms
            # of the final caption's delay for no better words on our tests.
            return Decoder(samprate=16000, loglevel="FATAL", fwdflat=False)
        return None

    def give(self, d):
        self.free.append(d)


class Stream:
    def __init__(self, sid, pool):
        self.sid = sid
        self.pool = pool
        self.ep = Endpointer()
        self.pending = b""
        self.decoder = None
        self.skipping = False
        self.spoken = 0.0
        self.since_partial = 0.0
        self.last = ""

    def feed(self, pcm):
        self.pending += pcm
        n = self.ep.frame_bytes
        while len(self.pending) >= n:
            frame, self.pending = self.pending[:n], self.pending[n:]
            was = self.ep.in_speech
            speech = self.ep.process(frame)
            if speech is None:
                continue
            if not was and self.ep.in_speech:
                self.start()
            self.speech(speech)
            if not self.ep.in_speech or self.spoken >= MAX_UTTERANCE:
                self.end()

    def start(self):
        self.decoder = self.pool.take()
        self.skipping = self.decoder is None
        if self.skipping:
            print(f"stream {self.sid}: no recogniser free", file=sys.stderr)
            return
        self.decoder.start_utt()
        self.spoken = 0.0
        self.since_partial = 0.0
        self.last = ""

    def speech(self, frame):
        if self.decoder is None:
            if not self.skipping:
                self.start()
            if self.decoder is None:
                return
        self.decoder.process_raw(frame, False, False)
        length = len(frame) / 32000.0
        self.spoken += length
        self.since_partial += length
        if self.since_partial >= PARTIAL_EVERY:
            self.since_partial = 0.0
            hyp = self.decoder.hyp()
            text = hyp.hypstr if hyp else ""
            if text and text != self.last:
                self.last = text
                emit({"stream": self.sid, "text": text, "final": False})

    def end(self):
        self.skipping = False
        d, self.decoder = self.decoder, None
        if d is None:
            return
        d.end_utt()
        hyp = d.hyp()
        text = hyp.hypstr if hyp else ""
        self.pool.give(d)
        if text:
            emit({"stream": self.sid, "text": text, "final": True})

    def close(self):
        if self.decoder is not None:
            self.end()
        emit({"stream": self.sid, "closed": True})


def read_exact(src, n):
    buf = b""
    while len(buf) < n:
        got = src.read(n - len(buf))
        if not got:
            return None
        buf += got
    return buf


def main():
    pool = Pool(MAX_DECODERS)
    # The first recogniser loads the model now, not at someone's first word.
    pool.give(pool.take())
    emit({"ready": True})
    streams = {}
    src = sys.stdin.buffer
    while True:
        head = read_exact(src, 8)
        if head is None:
            return
        sid, n = struct.unpack("<II", head)
        if n > MAX_FRAME or n % 2:
            print(f"stream {sid}: a frame of {n} bytes", file=sys.stderr)
            sys.exit(2)
        data = read_exact(src, n) if n else b""
        if data is None:
            return
        if n == 0:
            s = streams.pop(sid, None)
            if s is not None:
                s.close()
            else:
                emit({"stream": sid, "closed": True})
            continue
        s = streams.get(sid)
        if s is None:
            s = streams[sid] = Stream(sid, pool)
        s.feed(data)


if __name__ == "__main__":
    main()
