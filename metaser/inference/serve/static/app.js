// metaser web page: upload or record audio, POST it to /v1/predict, draw the result.
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

// ------------------------------------------------------------------ recording (16-bit WAV)
let rec = null;

function encodeWav(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const buf = new ArrayBuffer(44 + 2 * n);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, 2 * rate, true); v.setUint16(32, 2, true);
  v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) {
    for (let i = 0; i < c.length; i++, o += 2) {
      const s = Math.max(-1, Math.min(1, c[i]));
      v.setInt16(o, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
  }
  return new Blob([buf], { type: "audio/wav" });
}

async function toggleRecording() {
  const btn = $("record-button");
  if (rec) {
    const { ctx, stream, node, chunks } = rec;
    rec = null;
    node.disconnect();
    stream.getTracks().forEach((t) => t.stop());
    await ctx.close();
    btn.classList.remove("recording");
    btn.innerHTML = "&#9679; Record";
    $("record-status").textContent = "";
    send(encodeWav(chunks, ctx.sampleRate), "recording.wav");
    return;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("this browser gives no microphone access here (it needs https or localhost)", true);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext();
    const src = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    src.connect(node);
    node.connect(ctx.destination);
    rec = { ctx, stream, node, chunks };
    btn.classList.add("recording");
    btn.textContent = "■ Stop";
    $("record-status").textContent = "recording…";
  } catch (e) {
    setStatus(`microphone: ${e.message || e}`, true);
  }
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
