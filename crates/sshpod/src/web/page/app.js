// The recordings page: lists recordings, plays a terminal session with asciinema-player and
// shows the event log beside it. Clicking an event seeks the player to its time; the event at
// the player's current time is highlighted.
//
// Recordings hold what clients typed (on a honeypot: attackers), so nothing from them is ever
// put into the page as markup: only as text (textContent) or as the player's data.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  /** Thrown when the server wants a login. */
  class NeedsLogin extends Error {}

  const view = {
    player: null, // the asciinema-player instance
    timer: null, // the current-time poll
    recording: null, // the summary of the recording shown
    events: [], // its events, each with `time` (seconds since the Unix epoch) and `item` (its <li>)
    cast: null, // { name, channel, start (epoch seconds of the cast's time 0), duration }
    current: null, // the highlighted event
    seeked: null, // { entry, at }: the event clicked last and the player time it sought to
  };

  // ---- talking to the server -------------------------------------------------------------

  async function get(path) {
    const response = await fetch(path, { credentials: "same-origin" });
    if (response.status === 401) throw new NeedsLogin();
    if (!response.ok) {
      let reason = response.statusText;
      try {
        reason = (await response.json()).error || reason;
      } catch (_) {
        // Not JSON: keep the status text.
      }
      throw new Error(`${path}: ${response.status} ${reason}`);
    }
    return response;
  }

  const recordingPath = (id) => `/api/recordings/${encodeURIComponent(id)}`;
  const filePath = (id, name) => `${recordingPath(id)}/files/${encodeURIComponent(name)}`;

  // ---- formatting ------------------------------------------------------------------------

  function formatStart(start) {
    return start ? start.replace("T", " ").replace(/(\.\d{3})\d*/, "$1").replace("Z", "") : "—";
  }

  function formatDuration(seconds) {
    if (typeof seconds !== "number") return "—";
    const s = Math.round(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? `${h}h ${String(m).padStart(2, "0")}m ${rest}s` : `${m}m ${rest}s`;
  }

  function formatSize(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
  }

  /** `+m:ss.mmm` from the recording's first event. */
  function formatOffset(seconds) {
    if (!Number.isFinite(seconds)) return "";
    const m = Math.floor(seconds / 60);
    const s = (seconds - m * 60).toFixed(3).padStart(6, "0");
    return `+${m}:${s}`;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function setStatus(text, problem) {
    const status = $("status");
    status.textContent = text || "";
    status.classList.toggle("problem", Boolean(problem));
  }

  function show(section) {
    for (const id of ["login", "list", "viewer"]) $(id).hidden = id !== section;
    $("logout").hidden = section === "login";
  }

  // ---- login -----------------------------------------------------------------------------

  function askLogin() {
    stopPlayer();
    show("login");
    setStatus("");
    $("token").focus();
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = new URLSearchParams({ token: $("token").value });
    const response = await fetch("/login", { method: "POST", body, credentials: "same-origin" });
    $("token").value = "";
    $("login-refused").hidden = response.ok;
    if (response.ok) route();
  });

  $("logout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", credentials: "same-origin" });
    location.hash = "";
    askLogin();
  });

  // ---- the list --------------------------------------------------------------------------

  async function showList() {
    stopPlayer();
    const recordings = await (await get("/api/recordings")).json();
    const body = $("recordings").tBodies[0];
    body.replaceChildren();
    for (const r of recordings) {
      const row = body.insertRow();
      row.dataset.id = r.id;
      cell(row, formatStart(r.start), "start");
      cell(row, r.user || "—");
      cell(row, r.remote || "—");
      cell(row, formatDuration(r.duration), "number");
      cell(row, formatSize(r.size), "number");
      cell(row, r.terminal ? `${r.casts.length} session${r.casts.length > 1 ? "s" : ""}` : "—");
      const state = r.format !== "sshpod" ? `${r.format} (not playable here)`
        : r.complete ? "complete" : "interrupted";
      cell(row, r.problem ? `${state}: ${r.problem}` : state, r.problem ? "problem" : "");
      cell(row, r.id, "id");
      if (r.format === "sshpod") {
        row.className = "playable";
        row.tabIndex = 0;
        const open = () => { location.hash = `#/recording/${encodeURIComponent(r.id)}`; };
        row.addEventListener("click", open);
        row.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
      }
    }
    $("empty").hidden = recordings.length > 0;
    show("list");
    setStatus("");
  }

  // ---- one recording ---------------------------------------------------------------------

  function eventTime(event) {
    const ms = Date.parse(event.at);
    if (Number.isNaN(ms)) return NaN;
    // Date keeps milliseconds; the log has nanoseconds.
    const fraction = /\.(\d+)/.exec(event.at);
    const sub = fraction ? Number(`0.${fraction[1]}`) - Number(`0.${fraction[1].slice(0, 3)}`) : 0;
    return ms / 1000 + sub;
  }

  const COMMON = new Set(["seq", "at", "connection", "remote", "user", "channel", "kind"]);

  function details(event) {
    const parts = [];
    for (const [key, value] of Object.entries(event)) {
      if (COMMON.has(key)) continue;
      let text = typeof value === "string" ? value : JSON.stringify(value);
      if (text.length > 300) text = `${text.slice(0, 300)}…`;
      parts.push(`${key}=${text}`);
    }
    return parts.join("  ");
  }

  function renderEvents(events) {
    const list = $("events");
    list.replaceChildren();
    const first = events.find((e) => Number.isFinite(eventTime(e)));
    const origin = first ? eventTime(first) : NaN;
    view.events = events.map((event) => {
      const item = document.createElement("li");
      const time = eventTime(event);
      const offset = document.createElement("span");
      offset.className = "time";
      offset.textContent = formatOffset(time - origin);
      const head = document.createElement("span");
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = event.kind || "?";
      head.append(kind);
      if (event.channel !== null && event.channel !== undefined) {
        const channel = document.createElement("span");
        channel.className = "channel";
        channel.textContent = `channel ${event.channel}`;
        head.append(channel);
      }
      item.append(offset, head);
      const more = details(event);
      if (more) {
        const extra = document.createElement("span");
        extra.className = "details";
        extra.textContent = more;
        item.append(extra);
      }
      item.dataset.seq = event.seq ?? "";
      item.dataset.kind = event.kind || "";
      const entry = { event, time, item };
      item.addEventListener("click", () => seekTo(entry));
      list.append(item);
      return entry;
    });
  }

  function castChannel(name) {
    const match = /^channel-(\d+)\.cast$/.exec(name);
    return match ? Number(match[1]) : null;
  }

  function renderSessions(recording) {
    const nav = $("sessions");
    nav.replaceChildren();
    for (const name of recording.casts) {
      const button = document.createElement("button");
      button.type = "button";
      const channel = castChannel(name);
      button.textContent = channel === null ? name : `Terminal (channel ${channel})`;
      button.dataset.cast = name;
      button.addEventListener("click", () => loadCast(name));
      nav.append(button);
    }
    const files = $("files");
    files.replaceChildren();
    for (const file of recording.files) {
      const link = document.createElement("a");
      link.href = filePath(recording.id, file.name);
      link.textContent = `${file.name} (${formatSize(file.size)})`;
      files.append(link);
    }
  }

  async function openRecording(id) {
    stopPlayer();
    setStatus("Loading…");
    const recordings = await (await get("/api/recordings")).json();
    const recording = recordings.find((r) => r.id === id);
    if (!recording) {
      setStatus(`No recording ${id}.`, true);
      show("list");
      return;
    }
    view.recording = recording;
    const who = recording.user ? `${recording.user} from ${recording.remote || "?"}` : recording.remote || "";
    $("title").textContent = `${formatStart(recording.start)} · ${who} · ${recording.id}`;
    renderSessions(recording);
    $("player").replaceChildren();
    show("viewer");
    const events = await (await get(`${recordingPath(id)}/events`)).json();
    renderEvents(events);
    setStatus(recording.terminal ? "" : "This connection had no terminal session: only its events are shown.");
    if (recording.casts.length > 0) await loadCast(recording.casts[0]);
  }

  // ---- the player ------------------------------------------------------------------------

  function stopPlayer() {
    if (view.timer !== null) clearInterval(view.timer);
    view.timer = null;
    if (view.player) view.player.dispose();
    view.player = null;
    view.cast = null;
    view.current = null;
    view.seeked = null;
  }

  /** Where the cast's time 0 is: its header's timestamp, else its channel's first event. */
  function castStart(header, channel) {
    if (typeof header.timestamp === "number") return header.timestamp;
    const first = view.events.find((e) => e.event.channel === channel && Number.isFinite(e.time));
    return first ? first.time : NaN;
  }

  async function loadCast(name) {
    stopPlayer();
    if (typeof AsciinemaPlayer === "undefined") {
      setStatus("The player is not installed on this server (audit.web.assets): only the events are shown.", true);
      return;
    }
    const recording = view.recording;
    const text = await (await get(filePath(recording.id, name))).text();
    const end = text.indexOf("\n");
    let header;
    try {
      header = JSON.parse(end === -1 ? text : text.slice(0, end));
    } catch (_) {
      setStatus(`${name} is not an asciicast file.`, true);
      return;
    }
    const channel = castChannel(name);
    view.cast = { name, channel, start: castStart(header, channel) };
    for (const button of $("sessions").children) {
      button.setAttribute("aria-pressed", String(button.dataset.cast === name));
    }
    $("player").replaceChildren();
    view.player = AsciinemaPlayer.create({ data: text }, $("player"), {
      fit: "width",
      preload: true,
      controls: true,
      terminalFontSize: "small",
    });
    for (const entry of view.events) {
      entry.item.classList.toggle("seekable", isSeekable(entry));
    }
    view.timer = setInterval(highlight, 200);
  }

  /** Any event with a time can be seeked to (one before the cast's start goes to its start). */
  function isSeekable(entry) {
    return Number.isFinite(entry.time) && view.cast !== null;
  }

  function castFor(channel) {
    if (channel === null || channel === undefined || !view.recording) return null;
    const name = `channel-${channel}.cast`;
    return view.recording.casts.includes(name) ? name : null;
  }

  async function seekTo(entry) {
    if (!Number.isFinite(entry.time) || !view.recording) return;
    const own = castFor(entry.event.channel);
    if (own && (!view.cast || view.cast.name !== own)) await loadCast(own);
    if (!view.player || !view.cast) return;
    const duration = view.player.getDuration();
    let offset = Math.max(0, entry.time - view.cast.start);
    if (typeof duration === "number") offset = Math.min(offset, duration);
    await view.player.seek(offset);
    view.seeked = { entry, at: offset };
    highlight();
  }

  /** The last event at or before `seconds` into the cast. */
  function eventAt(seconds) {
    const now = view.cast.start + seconds + 0.0005;
    let match = null;
    for (const entry of view.events) {
      if (entry.time <= now) match = entry;
    }
    return match;
  }

  /**
   * Highlights the event at the player's current time; while the player stays where a click
   * sent it, the clicked event (several events can share a time, and one past the cast's end
   * is sought to its end).
   */
  function highlight() {
    if (!view.player || !view.cast) return;
    Promise.resolve(view.player.getCurrentTime()).then((seconds) => {
      if (typeof seconds !== "number" || !view.cast) return;
      const seeked = view.seeked;
      if (seeked && Math.abs(seconds - seeked.at) > 0.001) view.seeked = null;
      const match = view.seeked ? view.seeked.entry : eventAt(seconds);
      if (match === view.current) return;
      if (view.current) view.current.item.classList.remove("current");
      view.current = match;
      if (match) {
        match.item.classList.add("current");
        const list = $("events");
        const top = match.item.offsetTop; // #events is positioned: offsets are within it
        if (top < list.scrollTop || top > list.scrollTop + list.clientHeight - match.item.offsetHeight) {
          list.scrollTop = Math.max(0, top - list.clientHeight / 3);
        }
      }
    });
  }

  // ---- navigation ------------------------------------------------------------------------

  async function route() {
    const match = /^#\/recording\/(.+)$/.exec(location.hash);
    try {
      if (match) await openRecording(decodeURIComponent(match[1]));
      else await showList();
    } catch (error) {
      if (error instanceof NeedsLogin) askLogin();
      else setStatus(String(error.message || error), true);
    }
  }

  window.addEventListener("hashchange", route);
  route();
})();
