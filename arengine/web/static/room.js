// Room state and actions through the interaction API (/api/rooms/...).
"use strict";

const ROOM = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const API = `/api/rooms/${encodeURIComponent(ROOM)}`;

// Builds elements from data: strings become text nodes, never markup. `style` goes through
// the CSSOM (the page's Content-Security-Policy refuses inline style attributes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// A secret handed to the page in its URL (#name=... or ?name=...): kept in sessionStorage
// under `key` and taken out of the address bar at once, so it never shows on a screen
// share, in the history or in a Referer.
function takeSecret(name, key) {
  const hash = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const value = hash.get(name) || query.get(name);
  if (value) {
    sessionStorage.setItem(key, value);
    hash.delete(name);
    query.delete(name);
    const q = query.toString();
    const h = hash.toString();
    history.replaceState(null, "", location.pathname + (q ? `?${q}` : "") + (h ? `#${h}` : ""));
  }
  return sessionStorage.getItem(key) || "";
}

async function api(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  const r = await fetch(API + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await r.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch (e) { data = {detail: text}; }
  if (!r.ok) throw new Error(data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : r.statusText);
  return data;
}

// Calls onState(state) with the room state now and after every change. `token()`, if
// given, is the viewer's token: the server then counts the viewer present while the
// stream is open. The stream is the state view: snapshots after changes, at most five a
// second however busy the room (fetching the state after each event did not scale).
function watchRoom(onState, token) {
  let ws = null;
  async function fetchState() {
    try { onState(await api("GET", "")); } catch (e) { /* room gone or server restarting */ }
  }
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const t = token ? token() : "";
    const query = `?view=state${t ? `&token=${encodeURIComponent(t)}` : ""}`;
    ws = new WebSocket(`${proto}://${location.host}${API}/events${query}`);
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "snapshot") onState(msg.state);
    };
    ws.onclose = () => setTimeout(connect, 1500);
  }
  connect();
  fetchState();
  return {reconnect: () => { if (ws) ws.close(); }};
}

async function loadShades() {
  const r = await fetch("/api/shades");
  return (await r.json()).shades;
}

function setStatus(text, isError) {
  const s = document.getElementById("status");
  if (s) { s.textContent = text; s.className = isError ? "status error" : "status"; }
}
