// Proctor demo: the microphone capture, an AudioWorklet processor (loaded by demo.js). It runs on the
// audio thread at the AudioContext's rate (demo.js asks for 16 kHz, what the service takes), gathers
// CHUNK_S seconds of the first input channel and posts them to the page with the context time of
// their first sample. No output: nothing is played back.
"use strict";

// 2 s per chunk: the per-chunk work (a message, a session-actor call, a store write) costs as much as
// the speech model, so fewer chunks cut audio's CPU ~4x against 0.5 s (docs/AUDIO.md), for ~1.5 s
// more before an audio event opens.
const CHUNK_S = 2.0;

class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate * CHUNK_S);
    this.buffer = new Float32Array(this.size);
    this.filled = 0;
    this.firstTime = 0; // context time of buffer[0]
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true; // no input yet (or the track ended): keep running
    let offset = 0;
    while (offset < channel.length) {
      if (this.filled === 0) this.firstTime = currentTime + offset / sampleRate;
      const take = Math.min(channel.length - offset, this.size - this.filled);
      this.buffer.set(channel.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.size) {
        this.port.postMessage({ samples: this.buffer, time: this.firstTime, rate: sampleRate }, [this.buffer.buffer]);
        this.buffer = new Float32Array(this.size);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
