// WHIP/WHEP in the browser: one HTTP POST with a complete offer (no trickle ICE).
"use strict";

async function gatheredOffer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000);  // host candidates are enough on a LAN
    });
  }
  return pc.localDescription.sdp;
}

async function exchange(pc, url, headers) {
  const offer = await gatheredOffer(pc);
  const r = await fetch(url, {
    method: "POST", body: offer,
    headers: Object.assign({"Content-Type": "application/sdp"}, headers || {}),
  });
  const text = await r.text();
  if (r.status !== 201) {
    pc.close();
    let detail = text.trim();
    try { detail = JSON.parse(text).detail || detail; } catch (e) { /* not JSON */ }
    const err = new Error(`${r.status}: ${detail}`);
    err.status = r.status;
    throw err;
  }
  const location = new URL(r.headers.get("Location"), new URL(url, window.location.href)).toString();
  try {
    await pc.setRemoteDescription({type: "answer", sdp: text});
  } catch (e) {
    fetch(location, {method: "DELETE"}).catch(() => {});
    pc.close();
    throw e;
  }
  return location;
}

// A WHIP/WHEP session. `headers` go with its DELETE: ending a host's WHIP session needs
// the host token; a viewer's WHEP resource URL is its own secret.
class Session {
  constructor(pc, location, headers) { this.pc = pc; this.location = location; this.headers = headers || {}; }
  async close() {
    if (this.location) {
      const loc = this.location;
      this.location = null;
      try { await fetch(loc, {method: "DELETE", headers: this.headers}); } catch (e) { /* server gone */ }
    }
    this.pc.close();
  }
  // For pagehide: the request outlives the page.
  closeOnUnload() {
    if (this.location) fetch(this.location, {method: "DELETE", keepalive: true, headers: this.headers});
    this.location = null;
  }
}

// Publish the video track of `stream` to a WHIP endpoint.
async function whipPublish(url, stream, token) {
  const pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) {  // video, and the microphone when given
    pc.addTransceiver(track, {direction: "sendonly", streams: [stream]});
  }
  const auth = token ? {"Authorization": `Bearer ${token}`} : {};
  const location = await exchange(pc, url, auth);
  return new Session(pc, location, auth);
}

// Play a WHEP endpoint (video and the host's audio) into `video`; `onEvent` gets the data
// channel's JSON events.
async function whepPlay(url, video, onEvent) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const channel = pc.createDataChannel("events");
  channel.onmessage = (m) => { try { onEvent && onEvent(JSON.parse(m.data)); } catch (e) {} };
  const media = new MediaStream();
  pc.ontrack = (ev) => {
    // Live commerce wants the newest picture, not a smooth buffer: ask the browser to keep
    // its jitter buffer as short as the network allows.
    if ("jitterBufferTarget" in ev.receiver) ev.receiver.jitterBufferTarget = 0;
    else if ("playoutDelayHint" in ev.receiver) ev.receiver.playoutDelayHint = 0;
    media.addTrack(ev.track);
    if (video.srcObject !== media) video.srcObject = media;
    video.play().catch(() => {});
  };
  const location = await exchange(pc, url, {});
  const s = new Session(pc, location);
  s.channel = channel;
  return s;
}

// Keep a WHEP session alive: replay when the connection fails.
function whepKeepPlaying(url, video, onEvent, onState) {
  let session = null;
  let stopped = false;
  async function start() {
    while (!stopped) {
      try {
        session = await whepPlay(url, video, onEvent);
        onState && onState("connected");
        await new Promise((resolve) => {
          session.pc.addEventListener("connectionstatechange", () => {
            if (["failed", "closed"].includes(session.pc.connectionState)) resolve();
          });
        });
      } catch (e) {
        onState && onState(`error: ${e.message}`);
      }
      if (session) { await session.close(); session = null; }
      if (!stopped) { onState && onState("reconnecting"); await new Promise((r) => setTimeout(r, 1500)); }
    }
  }
  start();
  return {stop: async () => { stopped = true; if (session) await session.close(); }};
}
