// Viewer page: playback (WHEP from this server, or ?via=sfu through the SFU), votes, likes,
// chat, shade suggestions, clickable product sticker.
"use strict";

const video = document.getElementById("video");
const badge = document.getElementById("badge");
const errorBox = document.getElementById("error");
const nameField = document.getElementById("name");
let state = null;
let media = {size: null, regions: []};
let viewer = JSON.parse(localStorage.getItem(`viewer:${ROOM}`) || "null");
let shades = [];

nameField.value = localStorage.getItem("viewer-name") || `viewer-${Math.random().toString(36).slice(2, 6)}`;

function showError(e) { errorBox.textContent = e ? String(e.message || e) : ""; }

let joined = null;
// Join once per page load (again with the stored token after a reload: same viewer).
function ensureJoined() {
  if (!joined) {
    joined = (async () => {
      const name = nameField.value.trim() || "viewer";
      localStorage.setItem("viewer-name", name);
      let r;
      try {
        r = await api("POST", "/join", {name}, viewer ? viewer.token : undefined);
      } catch (e) {
        if (!viewer) throw e;
        r = await api("POST", "/join", {name});  // the stored token is from another database
      }
      viewer = {id: r.viewer_id, token: r.viewer_token, name};
      localStorage.setItem(`viewer:${ROOM}`, JSON.stringify(viewer));
      return viewer;
    })();
    joined.catch(() => { joined = null; });
  }
  return joined;
}

async function act(method, path, body) {
  showError(null);
  try {
    const v = await ensureJoined();
    return await api(method, path, body, v.token);
  } catch (e) {
    if (/viewer token/.test(String(e.message))) {  // database was reset: join again
      viewer = null; joined = null; localStorage.removeItem(`viewer:${ROOM}`);
    }
    showError(e);
    throw e;
  }
}

// -- video and the media data channel ------------------------------------------------

// Where the video comes from is the only difference between the two ways to watch: the
// player gives the same <video>, media events and states; everything else is the same page.
const VIA = new URLSearchParams(location.search).get("via") === "sfu" ? "sfu" : "whep";
const players = {
  whep: (onEvent, onState) => whepKeepPlaying(`/whep/${encodeURIComponent(ROOM)}`, video, onEvent, onState),
  sfu: (onEvent, onState) => sfuKeepPlaying(ROOM, video, onEvent, onState),
};

players[VIA]((ev) => {
  if (ev.type !== "media") return;
  media = ev;
  badge.textContent = ev.status === "live" ? "LIVE" : ev.status === "demo" ? "demo" : ev.status;
  setStatus(ev.status === "reconnecting" ? "host reconnecting…" : ev.status);
  layoutRegions();
}, (s) => { console.log(`${VIA}: ${s}`); if (s !== "connected") { badge.textContent = s; setStatus(s); } });

// Where the video picture is drawn inside the element (object-fit: contain letterboxing).
function pictureRect() {
  const box = video.getBoundingClientRect();
  const vw = video.videoWidth || (media.size ? media.size[0] : 16);
  const vh = video.videoHeight || (media.size ? media.size[1] : 9);
  const scale = Math.min(box.width / vw, box.height / vh);
  return {x: (box.width - vw * scale) / 2, y: (box.height - vh * scale) / 2, scale, vw, vh};
}

// Regions come normalized to 0..1 of the picture (the product sticker's click_regions).
function layoutRegions() {
  const layer = document.getElementById("regions");
  layer.replaceChildren();
  if (!media.regions) return;
  const p = pictureRect();
  const w = p.vw * p.scale;
  const h = p.vh * p.scale;
  for (const r of media.regions) {
    const d = el("div", {title: r.id || r.layer || "", "data-layer": r.layer || ""});
    d.style.left = `${p.x + r.x * w}px`;
    d.style.top = `${p.y + r.y * h}px`;
    d.style.width = `${r.w * w}px`;
    d.style.height = `${r.h * h}px`;
    d.onclick = () => openRegion(r);
    layer.append(d);
  }
}
window.addEventListener("resize", layoutRegions);
video.addEventListener("loadedmetadata", layoutRegions);
video.addEventListener("resize", layoutRegions);

function openRegion(r) {
  const product = state && state.product;
  if (!product) return;
  document.getElementById("product-name").textContent = product.name;
  document.getElementById("product-price").textContent = product.price;
  const link = document.getElementById("product-link");
  link.hidden = !product.url;
  if (product.url) link.href = product.url;
  document.getElementById("product").showModal();
  act("POST", `/stickers/${encodeURIComponent(r.id || product.id || "product")}/clicks`).catch(() => {});
}

// -- room state ----------------------------------------------------------------------

function renderPoll(p) {
  const panel = document.getElementById("poll-panel");
  panel.hidden = !p;
  if (!p) return;
  document.getElementById("poll-q").replaceChildren(el("b", {}, p.question));
  const total = Math.max(1, p.total_votes);
  document.getElementById("poll-options").replaceChildren(...p.options.map((o, i) => {
    const b = el("button", {"data-option": String(i)},
      el("span", {}, o.swatch_hex ? el("span", {class: "swatch", style: `background:${o.swatch_hex}`}) : null, o.label),
      el("span", {}, `${o.votes}${p.winner === i ? " ★" : ""}`));
    b.disabled = p.closed;
    b.onclick = () => act("POST", `/polls/${p.id}/votes`, {option: i});
    return el("div", {}, b, el("div", {class: "bar", style: `width:${(100 * o.votes / total).toFixed(0)}%`}));
  }));
  const left = Math.max(0, Math.round(p.closes_at - Date.now() / 1000));
  document.getElementById("poll-meta").textContent = p.closed ? "Poll closed." : `${p.total_votes} votes · ${left}s left`;
}

function renderState(s) {
  state = s;
  document.getElementById("title").textContent = s.title || ROOM;
  document.getElementById("likes").textContent = String(s.likes);
  document.getElementById("viewers").textContent = `${s.viewer_count} watching`;
  const g = s.like_goal;
  document.getElementById("goal").textContent = g ? `${g.message} ${g.count}/${g.target}${g.reached ? " ✓" : ""}` : "";
  renderPoll(s.poll);
  document.getElementById("comments").replaceChildren(...s.recent_comments.map((c) =>
    el("p", {}, el("b", {}, c.name), " ", c.text)));
  const box = document.getElementById("comments");
  box.scrollTop = box.scrollHeight;
}

// -- actions --------------------------------------------------------------------------

let pendingLikes = 0;
let likeTimer = null;
document.getElementById("like").onclick = () => {
  pendingLikes += 1;  // rapid taps become one request
  if (!likeTimer) likeTimer = setTimeout(() => {
    const n = Math.min(50, pendingLikes);
    pendingLikes = 0; likeTimer = null;
    act("POST", "/likes", {count: n}).catch(() => {});
  }, 250);
};

document.getElementById("comment-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("comment");
  const text = input.value.trim();
  if (!text) return;
  act("POST", "/comments", {text}).then(() => { input.value = ""; }).catch(() => {});
});

document.getElementById("suggest-send").onclick = () => {
  const id = document.getElementById("suggest").value;
  const shade = shades.find((s) => s.id === id);
  if (shade) act("POST", "/comments", {text: `💄 Try ${shade.name} (${shade.id})!`}).catch(() => {});
};

// Browsers only autoplay muted video: sound starts on a click.
document.getElementById("sound").onclick = (ev) => {
  video.muted = !video.muted;
  if (!video.muted) video.play().catch(() => {});
  ev.currentTarget.textContent = video.muted ? "🔇 Sound off" : "🔊 Sound on";
};

// The avatar shows next to your name on the video (PNG/JPEG/WebP up to 256 KB).
document.getElementById("avatar").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  showError(null);
  try {
    const v = await ensureJoined();
    const r = await fetch(`${API}/viewers/me/avatar`, {
      method: "PUT", body: file,
      headers: {"Content-Type": file.type, "Authorization": `Bearer ${v.token}`}});
    if (!r.ok) throw new Error((await r.json()).detail || r.statusText);
  } catch (e) { showError(e); }
});

// A new name is a new viewer: leave, then join again under it. Renames run one after
// another, each after any join still in flight (a name typed while the page's first join
// was on the wire used to be lost: that viewer stayed under the random name).
let renaming = Promise.resolve();
nameField.addEventListener("change", () => {
  const name = nameField.value.trim();
  if (!name) return;
  localStorage.setItem("viewer-name", name);
  renaming = renaming.then(async () => {
    if (joined) { try { await joined; } catch (e) { /* the join below tries again */ } }
    if (viewer && viewer.name === name) return;
    if (viewer) {
      try { await api("POST", "/leave", undefined, viewer.token); } catch (e) { /* already gone */ }
    }
    viewer = null;
    joined = null;
    localStorage.removeItem(`viewer:${ROOM}`);
    await ensureJoined();
    feed.reconnect();
  }).catch(showError);
});

loadShades().then((list) => {
  shades = list;
  document.getElementById("suggest").replaceChildren(...list.map((s) => el("option", {value: s.id}, s.name)));
}).catch(() => {});
// Presence: the event stream is opened with the viewer's token, so the server counts this
// viewer present while the page is open, for hours if need be; a heartbeat while the video
// plays covers a proxy that cuts long-lived sockets. (Before, a viewer who only watched was
// marked as left after 5 minutes.) A viewer timed out anyway is taken back by the server on
// the next vote, like or comment.
const feed = watchRoom(renderState, () => (viewer ? viewer.token : ""));
ensureJoined().then(() => feed.reconnect()).catch(() => {});
let beatMs = 60000;
async function heartbeat() {
  if (viewer && !video.paused) {
    try {
      const r = await api("POST", "/heartbeat", undefined, viewer.token);
      if (r.idle_s) beatMs = Math.max(2000, Math.min(60000, (r.idle_s * 1000) / 3));
    } catch (e) { /* offline for a moment: the next beat tries again */ }
  }
  setTimeout(heartbeat, beatMs);
}
setTimeout(heartbeat, 5000);

window.addEventListener("pagehide", () => {
  if (viewer) {  // leave the room's viewer row at once; the token stays for a later visit
    fetch(`${API}/leave`, {method: "POST", keepalive: true,
                           headers: {"Authorization": `Bearer ${viewer.token}`}});
  }
});
