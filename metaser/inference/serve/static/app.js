// metaser web page: upload a file (POST /v1/predict) or stream the microphone live
// (WS /v1/stream), and draw the result.
// Plain browser JavaScript, no libraries (the page must work offline).
"use strict";

const PALETTE = ["#d9534f", "#f0ad4e", "#5bc0de", "#5cb85c", "#8e6fd8", "#e377c2", "#7f7f7f", "#bcbd22",
                 "#17becf", "#1f77b4"];
let EMOTIONS = [];
const $ = (id) => document.getElementById(id);

function colour(label) {
  const i = EMOTIONS.indexOf(label);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text || "";
  s.className = isError ? "error" : "";
}

async function loadModelInfo() {
  const r = await fetch("/v1/model");
  const info = await r.json();
  EMOTIONS = info.emotions;
  $("model-name").textContent = info.model;
  $("backend").textContent = info.backend;
  $("synthetic-warning").hidden = !info.synthetic;
  $("limits").textContent = `up to ${info.max_upload_mb} MB and ${info.max_seconds} s; recordings longer than ` +
    `${info.segment_seconds} s are split into segments`;
}

function drawChart(labels) {
  const chart = $("chart");
  chart.replaceChildren();
  for (const { label, score } of labels) {
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill bar";
    fill.dataset.label = label;
    fill.dataset.score = String(score);
    fill.style.width = `${(100 * score).toFixed(1)}%`;
    fill.style.background = colour(label);
    track.appendChild(fill);
    const value = document.createElement("div");
    value.className = "value";
    value.textContent = `${(100 * score).toFixed(1)} %`;
    chart.append(name, track, value);
  }
}

function drawTimeline(res) {
  const box = $("timeline-box");
  const segs = res.segments || [];
  box.hidden = segs.length === 0;
  if (!segs.length) return;
  $("segmentation").textContent = `${segs.length} ${res.segmentation || ""}`.trim();
  const tl = $("timeline");
  tl.replaceChildren();
  const total = res.duration || segs[segs.length - 1].end;
  for (const s of segs) {
    const d = document.createElement("div");
    d.className = "seg";
    d.dataset.emotion = s.emotion;
    d.style.left = `${(100 * s.start / total).toFixed(3)}%`;
    d.style.width = `${(100 * (s.end - s.start) / total).toFixed(3)}%`;
    d.style.background = colour(s.emotion);
    d.title = `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: ${s.emotion} ` +
      `(${(100 * s.probs[s.emotion]).toFixed(0)} %)` + (s.transcript ? ` “${s.transcript}”` : "");
    tl.appendChild(d);
  }
  $("timeline-axis").replaceChildren(...[0, total / 2, total].map((t) => {
    const e = document.createElement("span");
    e.textContent = `${t.toFixed(1)} s`;
    return e;
  }));
  const seen = [...new Set(segs.map((s) => s.emotion))];
  $("legend").replaceChildren(...seen.map((e) => {
    const span = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = colour(e);
    span.append(sw, e);
    return span;
  }));
}

function show(res) {
  $("result").hidden = false;
  $("emotion").textContent = res.emotion;
  $("emotion").style.color = colour(res.emotion);
  $("emotion-prob").textContent = `${(100 * res.prob).toFixed(1)} %`;
  drawChart(res.labels);
  $("gender-row").hidden = res.gender == null;
  $("gender").textContent = res.gender == null ? "" : `${res.gender} (${(100 * res.gender_prob).toFixed(0)} %)`;
  $("style-row").hidden = res.style == null;
  $("style").textContent = res.style == null ? "" : `${res.style} (${(100 * res.style_prob).toFixed(0)} %)`;
  $("duration").textContent = `${res.duration.toFixed(2)} s`;
  $("transcript-row").hidden = res.transcript == null;
  $("transcript").textContent = res.transcript || "(empty)";
  drawTimeline(res);
  $("json").textContent = JSON.stringify(res, null, 2);
}

async function send(blob, filename) {
  setStatus(`predicting ${filename} …`);
  const form = new FormData();
  form.append("file", blob, filename);
  try {
    const r = await fetch("/v1/predict", { method: "POST", body: form });
    const body = await r.json();
    if (!r.ok) {
      setStatus(`${body.reason}: ${body.error}`, true);
      return;
    }
    setStatus(`${filename}: done`);
    document.body.dataset.state = "done";
    show(body);
  } catch (e) {
    setStatus(`request failed: ${e}`, true);
  }
}

// ------------------------------------------------------------------ recording: live over WS /v1/stream
// The microphone is sent as 16 kHz mono float32 PCM; the server answers one prediction per
// window (3 s every 1 s) while recording, and the duration-weighted summary after "end".
const STREAM_RATE = 16000;
const STREAM_START = { format: "float32", sample_rate: STREAM_RATE, window_seconds: 3, hop_seconds: 1 };
let live = null;

function makeResampler(from, to) {
  // linear interpolation after a box filter over one input step (enough for a preview; Chrome and
  // Firefox mostly give the 16 kHz context asked for, and then nothing is resampled here)
  if (from === to) return (x) => x;
  const step = from / to;
  const width = Math.max(1, Math.round(step));
  let prev = new Float32Array(0);
  let pos = 0;
  return (x) => {
    const buf = new Float32Array(prev.length + x.length);
    buf.set(prev);
    buf.set(x, prev.length);
    const out = [];
    while (pos + width < buf.length) {
      const i = Math.floor(pos);
      let acc = 0;
      for (let k = 0; k < width; k++) acc += buf[i + k];
      out.push(acc / width);
      pos += step;
    }
    const keep = Math.floor(pos);
    prev = buf.slice(keep);
    pos -= keep;
    return Float32Array.from(out);
  };
}

function streamUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream`;
}

function resetLive() {
  $("live").hidden = false;
  $("live-timeline").replaceChildren();
  $("live-axis").replaceChildren();
  $("live-emotion").textContent = "…";
  $("live-prob").textContent = "";
  $("live-time").textContent = "";
}

function addLiveWindow(w) {
  // the newest window colours the audio it added: [previous window's end, its end)
  const tl = $("live-timeline");
  const last = tl.lastElementChild;
  const from = last ? Math.min(parseFloat(last.dataset.end), w.end) : w.start;
  const d = document.createElement("div");
  d.className = "seg";
  d.dataset.index = String(w.index);
  d.dataset.start = String(w.start);
  d.dataset.end = String(w.end);
  d.dataset.from = String(from);
  d.dataset.emotion = w.silent ? "" : w.emotion;
  d.style.background = w.silent ? "#d5d8de" : colour(w.emotion);
  d.title = w.silent ? `${w.start.toFixed(1)}–${w.end.toFixed(1)} s: silent` :
    `${w.start.toFixed(1)}–${w.end.toFixed(1)} s: ${w.emotion} (${(100 * w.prob).toFixed(0)} %)`;
  tl.appendChild(d);
  const total = w.end;
  for (const s of tl.children) {
    const a = parseFloat(s.dataset.from), b = parseFloat(s.dataset.end);
    s.style.left = `${(100 * a / total).toFixed(3)}%`;
    s.style.width = `${(100 * (b - a) / total).toFixed(3)}%`;
  }
  $("live-axis").replaceChildren(...[0, total].map((t) => {
    const e = document.createElement("span");
    e.textContent = `${t.toFixed(1)} s`;
    return e;
  }));
  $("live-emotion").textContent = w.silent ? "(silence)" : w.emotion;
  $("live-emotion").style.color = w.silent ? "" : colour(w.emotion);
  $("live-prob").textContent = w.silent ? "" : `${(100 * w.prob).toFixed(1)} %`;
  $("live-time").textContent = `${w.start.toFixed(1)}–${w.end.toFixed(1)} s`;
  $("record-status").textContent = `${live ? "recording… " : ""}${tl.children.length} window(s)`;
}

function onStreamMessage(ev) {
  const m = JSON.parse(ev.data);
  if (m.error) {
    setStatus(`${m.reason}: ${m.error}`, true);
    return;
  }
  if (m.type === "ready") {
    $("record-status").textContent = "recording…";
  } else if (m.type === "window") {
    addLiveWindow(m);
  } else if (m.type === "summary") {
    setStatus(`recording: done (${m.windows} windows)`);
    document.body.dataset.state = "done";
    show(m);
  }
}

async function stopRecording() {
  const { ctx, stream, node, ws } = live;
  live = null;
  node.disconnect();
  stream.getTracks().forEach((t) => t.stop());
  await ctx.close();
  const btn = $("record-button");
  btn.classList.remove("recording");
  btn.innerHTML = "&#9679; Record";
  $("record-status").textContent = "";
  if (ws.readyState === WebSocket.OPEN) {
    setStatus("recording: summarising …");
    ws.send(JSON.stringify({ type: "end" }));
  }
}

async function audioContextAt16k(stream) {
  // a 16 kHz context resamples the microphone itself; some browsers refuse to connect a
  // microphone to a context at another rate than the device's: then resample here
  try {
    const ctx = new AudioContext({ sampleRate: STREAM_RATE });
    return { ctx, src: ctx.createMediaStreamSource(stream) };
  } catch (e) {
    const ctx = new AudioContext();
    return { ctx, src: ctx.createMediaStreamSource(stream) };
  }
}

async function toggleRecording() {
  if (live) {
    await stopRecording();
    return;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("this browser gives no microphone access here (it needs https or localhost)", true);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch (e) {
    setStatus(`microphone: ${e.message || e}`, true);
    return;
  }
  const { ctx, src } = await audioContextAt16k(stream);
  const resample = makeResampler(ctx.sampleRate, STREAM_RATE);
  const ws = new WebSocket(streamUrl());
  ws.binaryType = "arraybuffer";
  ws.onopen = () => ws.send(JSON.stringify(STREAM_START));
  ws.onmessage = onStreamMessage;
  ws.onerror = () => setStatus("the live stream failed (see the server's log)", true);
  ws.onclose = () => { if (live && live.ws === ws) stopRecording(); };
  const node = ctx.createScriptProcessor(4096, 1, 1);
  node.onaudioprocess = (e) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const x = resample(new Float32Array(e.inputBuffer.getChannelData(0)));
    if (x.length) ws.send(x.buffer);
  };
  src.connect(node);
  node.connect(ctx.destination);
  live = { ctx, stream, node, ws };
  resetLive();
  setStatus("");
  const btn = $("record-button");
  btn.classList.add("recording");
  btn.textContent = "■ Stop";
  $("record-status").textContent = "connecting…";
}

document.addEventListener("DOMContentLoaded", () => {
  loadModelInfo().catch((e) => setStatus(`cannot reach the server: ${e}`, true));
  $("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = $("file-input").files[0];
    if (!f) { setStatus("choose an audio file first", true); return; }
    send(f, f.name);
  });
  $("file-input").addEventListener("change", () => {
    const f = $("file-input").files[0];
    if (f) send(f, f.name);
  });
  $("record-button").addEventListener("click", toggleRecording);
});
