// Host console: publish over WHIP, watch the output over WHEP, drive shade/polls/effects.
"use strict";

const tokenField = document.getElementById("token");
tokenField.value = takeSecret("token", `host-token:${ROOM}`);
document.getElementById("room-name").textContent = ROOM;
const watchLink = document.getElementById("watch-link");
watchLink.href = `/watch/${encodeURIComponent(ROOM)}`;
watchLink.textContent = location.origin + watchLink.getAttribute("href");
const errorBox = document.getElementById("error");
let publisher = null;
let stream = null;
let state = null;

function token() {
  const t = tokenField.value.trim();
  if (t) sessionStorage.setItem(`host-token:${ROOM}`, t);
  return t;
}

function showError(e) { errorBox.textContent = e ? String(e.message || e) : ""; }

async function hostCall(method, path, body) {
  showError(null);
  try { return await api(method, path, body, token()); } catch (e) { showError(e); throw e; }
}

// -- publishing -----------------------------------------------------------------

async function listCameras() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const sel = document.getElementById("camera");
    for (const d of devices.filter((d) => d.kind === "videoinput")) {
      sel.append(el("option", {value: d.deviceId}, d.label || `camera ${sel.length}`));
    }
  } catch (e) { /* no permission yet */ }
}

async function goLive() {
  showError(null);
  const [w, h] = document.getElementById("resolution").value.split("x").map(Number);
  const deviceId = document.getElementById("camera").value;
  const video = {width: {ideal: w}, height: {ideal: h}, frameRate: {ideal: 30}};
  if (deviceId) video.deviceId = {exact: deviceId};
  document.getElementById("live").disabled = true;
  try {
    const audio = document.getElementById("mic").checked
      ? {echoCancellation: true, noiseSuppression: true} : false;
    stream = await navigator.mediaDevices.getUserMedia({video, audio});
    document.getElementById("local").srcObject = stream;
    publisher = await whipPublish(`/whip/${encodeURIComponent(ROOM)}`, stream, token());
    publisher.pc.addEventListener("connectionstatechange", () => {
      setStatus(`publishing: ${publisher ? publisher.pc.connectionState : "stopped"}`);
    });
    setStatus("publishing");
    document.getElementById("stop").disabled = false;
  } catch (e) {
    showError(e.status === 401 ? "Wrong or missing host token." : e);
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    document.getElementById("live").disabled = false;
  }
}

async function stop() {
  if (publisher) await publisher.close();
  publisher = null;
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  setStatus("offline");
  document.getElementById("live").disabled = false;
  document.getElementById("stop").disabled = true;
}

document.getElementById("live").onclick = goLive;
document.getElementById("stop").onclick = stop;
window.addEventListener("pagehide", () => {
  // End the WHIP session even when the tab closes, so viewers see "reconnecting" at once.
  if (publisher) publisher.closeOnUnload();
});

// -- output preview -----------------------------------------------------------------

const badge = document.getElementById("output-badge");
whepKeepPlaying(`/whep/${encodeURIComponent(ROOM)}`, document.getElementById("output"),
  (ev) => { if (ev.type === "media") badge.textContent = `output · ${ev.status}`; },
  (s) => { if (s !== "connected") badge.textContent = `output · ${s}`; });

// -- shade, polls, effects ---------------------------------------------------------------

async function setupShades() {
  const shades = await loadShades();
  const sel = document.getElementById("shade");
  const multi = document.getElementById("poll-shades");
  sel.append(el("option", {value: ""}, "No lipstick"));
  for (const s of shades) {
    sel.append(el("option", {value: s.id}, `${s.name} (${s.id})`));
    multi.append(el("option", {value: s.id}, s.name));
  }
  if (state && state.shade_id) sel.value = state.shade_id;
}

document.getElementById("shade-set").onclick = () => {
  const v = document.getElementById("shade").value;
  hostCall("PUT", "/shade", {shade_id: v || null});
};

document.getElementById("poll-start").onclick = () => {
  const shadeSel = document.getElementById("poll-shades");
  let options = [...shadeSel.selectedOptions].map((o) => ({label: o.textContent, shade_id: o.value}));
  const text = document.getElementById("poll-text").value.trim();
  if (!options.length && text) options = text.split(",").map((s) => ({label: s.trim()})).filter((o) => o.label);
  hostCall("POST", "/polls", {
    question: document.getElementById("poll-q").value,
    options, duration_s: Number(document.getElementById("poll-duration").value),
    apply_shade: document.getElementById("poll-apply").checked && options.some((o) => o.shade_id),
  });
};

document.getElementById("poll-close").onclick = () => {
  if (state && state.poll && !state.poll.closed) hostCall("POST", `/polls/${state.poll.id}/close`);
};

document.getElementById("product-set").onclick = () => {
  const url = document.getElementById("product-url").value.trim();
  hostCall("PUT", "/product", {
    name: document.getElementById("product-name").value.trim(),
    price: document.getElementById("product-price").value.trim(),
    url: url || null,
  });
};
document.getElementById("product-clear").onclick = () => hostCall("DELETE", "/product");
document.getElementById("goal-set").onclick = () => hostCall("PUT", "/like-goal", {
  target: Number(document.getElementById("goal-target").value),
  message: document.getElementById("goal-message").value,
});

function renderEffects(names) {
  const box = document.getElementById("effects");
  box.replaceChildren();
  for (const name of names.filter((n) => n !== "virtual_host")) {  // it has its own panel
    const enabled = state && state.effects[name] ? state.effects[name].enabled : true;
    const cb = el("input", {type: "checkbox", id: `fx-${name}`});
    cb.checked = enabled;
    cb.onchange = () => hostCall("PUT", "/effects", {effects: {[name]: {enabled: cb.checked}}});
    box.append(el("div", {class: "row"}, cb, el("label", {for: `fx-${name}`}, name)));
  }
}

// -- virtual host: PUT /effects {"effects": {"virtual_host": {enabled, settings}}} ---------

let vhCalibration = 0;
function virtualHostCall() {
  const settings = {
    character: document.getElementById("vh-character").value.trim() || "mei",
    mode: document.getElementById("vh-mode").value,
    background: document.getElementById("vh-background").value,
    calibration: vhCalibration,
  };
  return hostCall("PUT", "/effects", {effects: {virtual_host: {
    enabled: document.getElementById("vh-on").checked, settings}}});
}
document.getElementById("vh-on").onchange = virtualHostCall;
document.getElementById("vh-apply").onclick = virtualHostCall;
document.getElementById("vh-calibrate").onclick = () => { vhCalibration += 1; virtualHostCall(); };

function renderVirtualHost(s) {
  const fx = s.effects && s.effects.virtual_host;
  if (!fx) return;
  const st = fx.settings || {};
  const set = (id, v) => { const e = document.getElementById(id); if (document.activeElement !== e && v !== undefined) e.value = v; };
  document.getElementById("vh-on").checked = !!fx.enabled;
  set("vh-character", st.character);
  set("vh-mode", st.mode);
  set("vh-background", st.background);
  if (typeof st.calibration === "number") vhCalibration = Math.max(vhCalibration, st.calibration);
}

let effectNames = [];
function renderState(s) {
  state = s;
  const p = s.poll;
  const now = document.getElementById("poll-now");
  if (!p) now.textContent = "No poll.";
  else {
    const left = Math.max(0, Math.round(p.closes_at - Date.now() / 1000));
    now.replaceChildren(el("b", {}, p.question), ` ${p.closed ? "(closed)" : `(${left}s left)`} · ${p.total_votes} votes`,
      ...p.options.map((o, i) => el("div", {}, o.swatch_hex ? el("span", {class: "swatch", style: `background:${o.swatch_hex}`}) : null,
        `${o.label}: ${o.votes}${p.winner === i ? " ★" : ""}`)));
  }
  document.getElementById("room-info").textContent =
    `${s.viewer_count} viewers (peak ${s.peak_viewers}) · ${s.likes} likes · ${s.interaction_rate.toFixed(2)} interactions/min`;
  if (effectNames.length) renderEffects(effectNames);
  renderVirtualHost(s);
  const chat = document.getElementById("comments");
  if (s.recent_comments.length) {
    chat.replaceChildren(...s.recent_comments.map((c) => el("p", {}, el("b", {}, c.name), " ", c.text)));
    chat.scrollTop = chat.scrollHeight;
  }
  if (s.product && document.activeElement.id.indexOf("product") !== 0) {
    document.getElementById("product-name").value = s.product.name;
    document.getElementById("product-price").value = s.product.price;
    document.getElementById("product-url").value = s.product.url || "";
  }
  const sel = document.getElementById("shade");
  if (document.activeElement !== sel && s.shade_id !== undefined) sel.value = s.shade_id || "";
}

// -- live stats ------------------------------------------------------------------------

async function refreshStats() {
  try {
    const t = token();
    if (!t) { document.getElementById("summary").textContent = "Enter the host token to see live stats."; return; }
    const r = await fetch(`${API}/stats`, {headers: {"Authorization": `Bearer ${t}`}});
    const st = await r.json();
    if (!r.ok) { document.getElementById("summary").textContent = st.detail || r.statusText; return; }
    const fps = st.fps || {};
    const out = Object.entries(fps).filter(([k]) => k.startsWith("out:")).map(([k, v]) => `${k.slice(4)} ${v} fps`);
    const drops = Object.entries(st.dropped || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
    document.getElementById("summary").textContent =
      `${st.status} · in ${fps.in || 0} fps · out ${out.join(", ") || "–"} · viewers ${st.viewers} · dropped: ${drops}`;
    document.getElementById("summary").textContent += (st.colour || []).map(c => ` · lips ${c.shade || "bare"} ΔE00 ${c.delta_e00.toFixed(1)} in this light`).join("");
    const comp = st.compositor || {};
    if (comp.where === "process") {  // a restarted compositor process is worth seeing
      document.getElementById("summary").textContent += ` · compositor process ${comp.state}` +
        (comp.restarts ? ` (restarted ${comp.restarts}×)` : "");
    }
    const body = document.querySelector("#stages tbody");
    body.replaceChildren(...Object.entries(st.stages || {}).map(([name, v]) =>
      el("tr", {}, el("td", {}, name), el("td", {}, v.p50_ms.toFixed(1)), el("td", {}, v.p95_ms.toFixed(1)),
         el("td", {}, v.p99_ms.toFixed(1)), el("td", {}, String(v.n)))));
    const names = Object.keys(st.effects || {});
    if (names.join() !== effectNames.join()) { effectNames = names; renderEffects(names); }
  } catch (e) { /* server restarting */ }
}

// -- outputs (RTMP push to platforms, the SFU, recordings) ---------------------------

const outputKind = document.getElementById("output-kind");
let outputKinds = [];

function showOutputFields() {
  for (const row of document.querySelectorAll("[data-kind]")) {
    row.hidden = !row.dataset.kind.split(" ").includes(outputKind.value);
  }
}
outputKind.addEventListener("change", showOutputFields);

function renderOutputs(list, kinds) {
  if (kinds && kinds.join() !== outputKinds.join()) {
    outputKinds = kinds;
    outputKind.replaceChildren(...kinds.map((k) => el("option", {value: k}, k)));
    showOutputFields();
  }
  const box = document.getElementById("outputs");
  if (!list.length) { box.textContent = "Only this page's viewers."; return; }
  box.replaceChildren(...list.map((o) => {
    const where = o.target || o.file || (o.janus_room ? `Janus room ${o.janus_room}` : "");
    const stop = el("button", {}, "Stop");
    stop.onclick = () => hostCall("DELETE", `/outputs/${encodeURIComponent(o.id)}`).catch(() => {});
    return el("div", {class: "row"}, el("b", {}, o.kind), ` ${where} · ${o.state} · ${o.fps} fps · ` +
      `${o.bitrate_kbps} kbit/s · dropped ${o.dropped}` + (o.reconnects ? ` · reconnects ${o.reconnects}` : "") +
      (o.last_error ? ` · ${o.last_error}` : ""), stop);
  }));
}

document.getElementById("output-start").onclick = () => {
  const kind = outputKind.value;
  const body = {kind};
  if (kind === "rtmp" || kind === "record") {
    body.bitrate_kbps = Number(document.getElementById("output-bitrate").value);
    body.keyframe_interval_s = Number(document.getElementById("output-gop").value);
    body.profile = document.getElementById("output-profile").value;
  }
  if (kind === "rtmp") {
    body.url = document.getElementById("output-url").value.trim();
    const key = document.getElementById("output-key").value.trim();
    if (key) body.stream_key = key;
  } else if (kind === "record") {
    body.file = document.getElementById("output-file").value.trim();
  }
  hostCall("POST", "/outputs", body).then(() => {
    document.getElementById("output-key").value = "";  // the key is not kept in the page
  }).catch(() => {});
};

async function refreshOutputs() {
  const t = token();
  if (!t) return;
  try {
    const r = await fetch(`${API}/outputs`, {headers: {"Authorization": `Bearer ${t}`}});
    if (r.ok) { const data = await r.json(); renderOutputs(data.outputs, data.kinds); }
  } catch (e) { /* server restarting */ }
}

listCameras();
setupShades();
refreshOutputs();
setInterval(refreshOutputs, 2000);
watchRoom(renderState);
refreshStats();
setInterval(refreshStats, 1000);
