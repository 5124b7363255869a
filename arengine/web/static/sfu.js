// Playing a room through the SFU (a Janus VideoRoom) instead of WHEP: the same picture,
// audio and media events, relayed by Janus, which scales to audiences one server cannot.
// Janus's own client (janus.js) and the WebRTC adapter it needs are loaded on demand from
// this app's /static/vendor/ (Debian's packages): the WHEP page never pays for them.
"use strict";

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = () => resolve();
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

let janusLoaded = null;
function loadJanus() {
  if (!janusLoaded) {
    janusLoaded = loadScript("/static/vendor/adapter.js")
      .then(() => loadScript("/static/vendor/janus.js"))
      .then(() => new Promise((resolve) => Janus.init({debug: false, callback: resolve})));
    janusLoaded.catch(() => { janusLoaded = null; });
  }
  return janusLoaded;
}

// Where the room is on the SFU: {janus, room, feed} from arengine (404: not on one).
async function sfuInfo(room) {
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}/sfu`);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error(data.detail || r.statusText);
    err.status = r.status;
    throw err;
  }
  return data;
}

// One subscription to the room's feed; resolves when it ends (Janus gone, feed gone).
function sfuWatchOnce(info, video, onEvent, onState) {
  return new Promise((resolve) => {
    let janus = null;
    let handle = null;
    let ended = false;
    const media = new MediaStream();
    function end(why) {
      if (ended) return;
      ended = true;
      onState && onState(why);
      try { if (janus) janus.destroy({notifyDestroyed: false}); } catch (e) { /* gone */ }
      resolve();
    }
    janus = new Janus({
      server: info.janus,
      iceServers: [],  // host candidates; no third-party STUN
      destroyOnUnload: true,
      success: () => janus.attach({
        plugin: "janus.plugin.videoroom",
        success: (h) => {
          handle = h;
          handle.send({message: {request: "join", ptype: "subscriber", room: info.room,
                                 streams: [{feed: info.feed}]}});
        },
        error: (e) => end(`error: ${e}`),
        onmessage: (msg, jsep) => {
          if (msg.error) { end(`error: ${msg.error}`); return; }
          if (msg.unpublished === info.feed || msg.leaving === info.feed) { end("reconnecting"); return; }
          if (!jsep) return;
          // A data channel of our own: Janus relays the publisher's channel only to
          // subscribers that open one.
          handle.createAnswer({
            jsep, tracks: [{type: "data"}],
            success: (answer) => handle.send({message: {request: "start", room: info.room}, jsep: answer}),
            error: (e) => end(`error: ${e && e.message ? e.message : e}`),
          });
        },
        onremotetrack: (track, mid, on) => {
          if (!on) { media.removeTrack(track); return; }
          media.addTrack(track);
          if (video.srcObject !== media) video.srcObject = media;
          video.play().catch(() => {});
        },
        ondata: (data) => { try { onEvent && onEvent(JSON.parse(data)); } catch (e) { /* not JSON */ } },
        webrtcState: (up) => { if (up) onState && onState("connected"); else end("reconnecting"); },
        oncleanup: () => end("reconnecting"),
      }),
      error: (e) => end(`error: ${e}`),
      destroyed: () => end("reconnecting"),
    });
  });
}

// Keep watching through the SFU: ask arengine where the room is, subscribe, and again
// after the feed or Janus went away. Same shape as whepKeepPlaying (webrtc.js).
function sfuKeepPlaying(room, video, onEvent, onState) {
  let stopped = false;
  async function start() {
    while (!stopped) {
      try {
        await loadJanus();
        const info = await sfuInfo(room);
        await sfuWatchOnce(info, video, onEvent, onState);
      } catch (e) {
        onState && onState(e.status === 404 ? "not on an SFU" : `error: ${e.message}`);
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 2000));
    }
  }
  start();
  return {stop: () => { stopped = true; }};
}
