// The web console: the gateway's own API in a page. Live calls from /v1/events (the last ten
// minutes, then as they happen; the browser resumes with Last-Event-ID after a drop), search
// through /v1/calls, a call page at #/call/ID, audio from /v1/calls/ID/audio, and a scanner that
// plays new calls of the checked talkgroups in turn. The API key is kept in localStorage; event
// streams and audio carry it as ?api_key= because EventSource and <audio> cannot send headers.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  key: localStorage.getItem("bcfy.key") || "",
  checked: new Set(JSON.parse(localStorage.getItem("bcfy.talkgroups") || "[]")),
  names: new Map(),
  rows: new Map(),
  queue: [],
  source: null,
  dropped: false,
  reconnectedAt: null,
  caughtUp: 0,
  searchCursor: null,
};

function withKey(path) {
  if (!state.key) return path;
  const url = new URL(path, location.origin);
  url.searchParams.set("api_key", state.key);
  return url.pathname + url.search;
}

async function api(path) {
  const headers = state.key ? { Authorization: "Bearer " + state.key } : {};
  const response = await fetch(path, { headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.message || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function setStatus(kind, text) {
  const status = $("status");
  status.dataset.state = kind;
  status.textContent = text;
}

const shardKey = (sid, tg) => `${sid}-${tg}`;

function talkgroupName(sid, tg, call) {
  const named = call && (call.display || call.descr);
  if (named) state.names.set(shardKey(sid, tg), named);
  return state.names.get(shardKey(sid, tg)) || `${sid}-${tg}`;
}

function visible(sid, tg) {
  return state.checked.size === 0 || state.checked.has(shardKey(sid, tg));
}

// --- talkgroups: filter, and what the scanner plays -------------------------------------------

function addTalkgroup(sid, tg, name) {
  const key = shardKey(sid, tg);
  if (name) state.names.set(key, name);
  if ($("talkgroup-list").querySelector(`input[value="${key}"]`)) return;
  const label = document.createElement("label");
  label.className = "chip";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.value = key;
  box.checked = state.checked.has(key);
  box.addEventListener("change", () => {
    if (box.checked) state.checked.add(key);
    else state.checked.delete(key);
    localStorage.setItem("bcfy.talkgroups", JSON.stringify([...state.checked]));
    for (const row of state.rows.values()) row.hidden = !visible(row.dataset.sid, row.dataset.tg);
  });
  label.append(box, " ", state.names.get(key) || key);
  $("talkgroup-list").append(label);
}

// --- call rows ---------------------------------------------------------------------------------

// A call's card: a play button, a line of facts, the transcript.
function card(tag, id) {
  const row = document.createElement(tag);
  row.className = "call";
  row.dataset.callId = id;
  const play = document.createElement("button");
  play.type = "button";
  play.className = "play";
  play.title = "Play";
  play.textContent = "▶";
  play.addEventListener("click", () => playCall(id));
  const meta = document.createElement("div");
  meta.className = "meta";
  const text = document.createElement("p");
  text.className = "transcript";
  row.append(play, meta, text);
  return { row, play, meta, text };
}

function callRow(id) {
  let row = state.rows.get(id);
  if (row) return row;
  const made = card("li", id);
  made.text.classList.add("pending");
  made.text.textContent = "Transcribing…";
  row = made.row;
  state.rows.set(id, row);
  return row;
}

function fillMeta(row, sid, tg, call) {
  row.dataset.sid = sid;
  row.dataset.tg = tg;
  const seconds = Number(call.ts || call.metaStarttime || 0);
  if (seconds) row.dataset.time = seconds;
  const meta = row.querySelector(".meta");
  meta.textContent = "";
  const name = document.createElement("span");
  name.className = "tg";
  name.textContent = talkgroupName(sid, tg, call);
  const when = document.createElement("time");
  if (seconds) {
    when.dateTime = new Date(seconds * 1000).toISOString();
    when.textContent = new Date(seconds * 1000).toLocaleTimeString();
  }
  const link = document.createElement("a");
  link.href = "#/call/" + encodeURIComponent(row.dataset.callId);
  link.textContent = "call page";
  meta.append(name, when);
  if (call.callDuration) meta.append(`${call.callDuration} s`);
  const unit = call.callSrcDescr || (Number(call.callSrc) > 0 ? `unit ${call.callSrc}` : "");
  if (unit) {
    const u = document.createElement("span");
    u.className = "unit";
    u.textContent = unit;
    meta.append(u);
  }
  meta.append(link);
  row.hidden = !visible(sid, tg);
}

function place(row) {
  const list = $("calls");
  if (row.parentNode === list) return;
  const time = Number(row.dataset.time || 0);
  const later = [...list.children].find((other) => Number(other.dataset.time || 0) <= time);
  list.insertBefore(row, later || null);
  $("empty").hidden = true;
}

function setTranscript(row, text, html) {
  const p = row.querySelector(".transcript");
  p.classList.remove("pending");
  if (html !== undefined) p.innerHTML = html; // the gateway escapes it; only <b> is markup
  else p.textContent = text;
}

function onEvent(kind, event) {
  const data = event.data || {};
  const call = data.call || {};
  if (state.reconnectedAt && kind === "call" && Date.parse(event.stored_at) < state.reconnectedAt) {
    state.caughtUp += 1;
    setStatus("reconnected", `Reconnected, caught up ${state.caughtUp} calls`);
  }
  const row = callRow(event.call_id);
  if (kind === "call" || kind === "transcript") {
    fillMeta(row, event.sid, event.tg, call);
    addTalkgroup(event.sid, event.tg, call.display || call.descr);
  }
  if (kind === "transcript") setTranscript(row, data.text || "");
  if (kind === "audio") {
    row.dataset.audio = "stored";
    if ($("autoplay").checked && state.checked.has(shardKey(event.sid, event.tg))) enqueue(event.call_id);
  }
  place(row);
}

// --- the live stream ---------------------------------------------------------------------------

function connect() {
  if (state.source) state.source.close();
  setStatus("connecting", "Connecting…");
  const since = new Date(Date.now() - 10 * 60 * 1000).toISOString();
  const source = new EventSource(withKey("/v1/events?since=" + encodeURIComponent(since)));
  source.onopen = () => {
    if (state.dropped) {
      state.reconnectedAt = Date.now();
      state.caughtUp = 0;
      setStatus("reconnected", "Reconnected, caught up 0 calls");
    } else {
      setStatus("live", "Live");
    }
    state.dropped = false;
  };
  source.onerror = () => {
    state.dropped = true;
    setStatus("connecting", "Connection lost; reconnecting…");
  };
  for (const kind of ["call", "audio", "transcript"]) {
    source.addEventListener(kind, (message) => onEvent(kind, JSON.parse(message.data)));
  }
  source.addEventListener("dropped", () => {
    source.close();
    setStatus("error", "The gateway dropped this stream: the page fell too far behind. Reconnecting…");
    state.dropped = true;
    setTimeout(connect, 1000);
  });
  state.source = source;
}

// --- audio ---------------------------------------------------------------------------------------

function playCall(id) {
  const player = $("player");
  for (const button of document.querySelectorAll('.play[data-playing="true"]')) button.dataset.playing = "false";
  player.src = withKey(`/v1/calls/${encodeURIComponent(id)}/audio`);
  player.dataset.callId = id;
  for (const row of document.querySelectorAll(`[data-call-id="${CSS.escape(id)}"] .play`)) row.dataset.playing = "true";
  player.play().catch((error) => setStatus("error", "Cannot play: " + error.message));
}

function enqueue(id) {
  state.queue.push(id);
  const player = $("player");
  if (player.paused || player.ended) playCall(state.queue.shift());
}

$("player").addEventListener("ended", () => {
  for (const button of document.querySelectorAll('.play[data-playing="true"]')) button.dataset.playing = "false";
  if (state.queue.length) playCall(state.queue.shift());
});

// --- search --------------------------------------------------------------------------------------

function resultRow(found) {
  const { row, meta, text } = card("li", found.call_id);
  const name = document.createElement("span");
  name.className = "tg";
  name.textContent = found.talkgroup || state.names.get(shardKey(found.sid, found.tg)) || `${found.sid}-${found.tg}`;
  const when = document.createElement("time");
  when.dateTime = found.time;
  when.textContent = new Date(found.time).toLocaleString();
  const link = document.createElement("a");
  link.href = "#/call/" + encodeURIComponent(found.call_id);
  link.textContent = "call page";
  meta.append(name, when, ...found.units.map((u) => `unit ${u}`), link);
  text.innerHTML = found.highlight; // escaped by the gateway; only <b> is markup
  return row;
}

async function search(params, append) {
  const query = new URLSearchParams(params);
  if (append && state.searchCursor) query.set("cursor", state.searchCursor);
  try {
    const found = await api("/v1/calls?" + query);
    if (!append) $("results").textContent = "";
    for (const call of found.calls) $("results").append(resultRow(call));
    state.searchCursor = found.next_cursor;
    $("more").hidden = !found.next_cursor;
    $("search-summary").textContent = `${found.total} calls found`;
    const facets = $("facets");
    facets.textContent = "";
    for (const t of found.facets.talkgroups) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chip";
      button.textContent = `${t.name || state.names.get(shardKey(t.sid, t.tg)) || shardKey(t.sid, t.tg)} (${t.count})`;
      button.addEventListener("click", () => {
        const next = new URLSearchParams(params);
        next.set("sid", t.sid);
        next.set("tg", t.tg);
        location.hash = "#/search?" + next;
      });
      facets.append(button);
    }
  } catch (error) {
    setStatus("error", "Search failed: " + error.message);
  }
}

// --- the call page -------------------------------------------------------------------------------

async function showCall(id) {
  const detail = $("call-detail");
  detail.textContent = "Loading…";
  try {
    const view = await api("/v1/calls/" + encodeURIComponent(id));
    detail.textContent = "";
    const { row, play, meta, text } = card("div", view.call_id);
    play.disabled = !view.audio;
    const call = view.call || {};
    const seconds = Number(call.ts || 0);
    meta.append(talkgroupName(view.sid, view.tg, call));
    if (seconds) meta.append(" · " + new Date(seconds * 1000).toLocaleString());
    if (call.callDuration) meta.append(` · ${call.callDuration} s`);
    if (call.callSrcDescr || Number(call.callSrc) > 0) meta.append(" · unit " + (call.callSrcDescr || call.callSrc));
    const latest = view.transcripts[view.transcripts.length - 1];
    text.textContent = latest ? latest.text : "No transcript yet.";
    detail.append(row);
  } catch (error) {
    detail.textContent = error.status === 404 ? "No such call (or not in this key's scope)." : "Cannot load the call: " + error.message;
  }
}

// --- routes: #/ (live), #/search?q=…, #/call/ID ------------------------------------------------

function route() {
  const hash = location.hash || "#/";
  $("live-view").hidden = true;
  $("search-view").hidden = true;
  $("call-view").hidden = true;
  if (hash.startsWith("#/search?")) {
    const params = new URLSearchParams(hash.slice("#/search?".length));
    $("search").value = params.get("q") || "";
    $("search-view").hidden = false;
    state.searchCursor = null;
    search(params, false);
  } else if (hash.startsWith("#/call/")) {
    $("call-view").hidden = false;
    showCall(decodeURIComponent(hash.slice("#/call/".length)));
  } else {
    $("live-view").hidden = false;
  }
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("search").value.trim();
  location.hash = q ? "#/search?" + new URLSearchParams({ q }) : "#/";
});
$("more").addEventListener("click", () => {
  const params = new URLSearchParams((location.hash || "").slice("#/search?".length));
  search(params, true);
});
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("key").value.trim();
  localStorage.setItem("bcfy.key", state.key);
  $("key-box").open = false;
  start();
});
window.addEventListener("hashchange", route);

async function start() {
  $("key").value = state.key;
  try {
    const listed = await api("/v1/talkgroups");
    for (const t of listed.talkgroups) addTalkgroup(t.sid, t.tg, t.display || t.description);
  } catch (error) {
    if (error.status === 401) {
      setStatus("error", "The API key is missing or was refused: enter one under “API key”.");
      $("key-box").open = true;
      return;
    }
    setStatus("error", "Cannot reach the gateway: " + error.message);
  }
  connect();
  route();
}

start();
