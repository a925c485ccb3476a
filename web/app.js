// The bgrm dashboard: state from /v1/events (Server-Sent Events), previews from /v1/preview/ID,
// and a drop zone that posts to /v1/remove. Plain DOM and canvas, no external code.
'use strict';

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get('token');
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
const cameraViews = new Map(); // id -> { card, canvas, info, frameNumber, busy }

function text(el, value) { el.textContent = value; }
function fmt(n, digits = 1) { return Number.isFinite(n) ? n.toFixed(digits) : '–'; }

function renderWorkers(workers) {
  const body = $('workers').tBodies[0];
  body.replaceChildren();
  if (workers.length === 0) {
    const tr = body.insertRow(); tr.className = 'empty';
    const td = tr.insertCell(); td.colSpan = 11; td.textContent = 'no worker has reported yet';
    return;
  }
  for (const w of workers) {
    const tr = body.insertRow();
    tr.dataset.worker = w.workerId;
    const lag = Object.values(w.lag).reduce((a, b) => a + b, 0);
    const cells = [w.workerId, w.group, w.partitions.join(', ') || '–', fmt(w.fps, 2), `${w.latencyMs.p50} / ${w.latencyMs.p95}`, w.processed, w.failed, w.deadLettered, w.skipped, lag];
    for (const c of cells) tr.insertCell().textContent = String(c);
    const err = tr.insertCell(); err.className = 'err';
    err.textContent = w.lastError ? `${w.lastError.code} (${new Date(w.lastError.at).toLocaleTimeString()})` : '';
  }
}

function renderLag(workers) {
  const box = $('lag');
  const rows = [];
  for (const w of workers) for (const [p, n] of Object.entries(w.lag)) rows.push({ label: `${w.topic}[${p}]`, n, worker: w.workerId });
  box.replaceChildren();
  if (rows.length === 0) { const s = document.createElement('span'); s.className = 'muted'; s.textContent = 'no lag reported'; box.append(s); return; }
  const max = Math.max(1, ...rows.map((r) => r.n));
  for (const r of rows.sort((a, b) => a.label.localeCompare(b.label))) {
    const div = document.createElement('div'); div.className = 'bar';
    const label = document.createElement('span'); label.textContent = `${r.label} ${r.n}`;
    const bar = document.createElement('i'); bar.style.width = `${Math.round((r.n / max) * 160)}px`;
    div.append(bar, label); box.append(div);
  }
}

function chart(canvas, series, keys, colors) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const pad = 28;
  const max = Math.max(1, ...series.flatMap((p) => keys.map((k) => p[k])));
  ctx.strokeStyle = '#dde2e8'; ctx.fillStyle = '#6b7785'; ctx.font = '11px system-ui';
  for (const f of [0, 0.5, 1]) {
    const yy = height - pad - (height - 2 * pad) * f;
    ctx.beginPath(); ctx.moveTo(pad, yy); ctx.lineTo(width, yy); ctx.stroke();
    ctx.fillText(fmt(max * f, max * f < 10 ? 1 : 0), 0, yy + 4);
  }
  if (series.length < 2) return;
  const t0 = series[0].t; const t1 = series[series.length - 1].t;
  keys.forEach((k, i) => {
    ctx.strokeStyle = colors[i]; ctx.lineWidth = 2; ctx.beginPath();
    series.forEach((p, j) => {
      const x = pad + ((p.t - t0) / Math.max(1, t1 - t0)) * (width - pad);
      const y = height - pad - (p[k] / max) * (height - 2 * pad);
      if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  ctx.fillStyle = '#6b7785';
  ctx.fillText(`last ${Math.round((t1 - t0) / 1000)} s`, width - 70, height - 8);
}

async function fetchImage(url) {
  const res = await fetch(url, { headers: authHeaders, cache: 'no-store' });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  const bitmap = await createImageBitmap(await res.blob());
  bitmap.frameNumber = Number(res.headers.get('X-Frame-Number'));
  return bitmap;
}

async function drawPreview(view, cam) {
  const id = encodeURIComponent(cam.id);
  const image = await fetchImage(`/v1/preview/${id}`);
  const canvas = view.canvas;
  canvas.width = image.width; canvas.height = image.height;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (cam.content.startsWith('mask') && cam.hasFrame) {
    // the output is a mask: put it as alpha onto the input frame it names (the same pair)
    const frame = await fetchImage(`/v1/preview/${id}?part=frame`);
    if (frame.frameNumber !== image.frameNumber) return view.frameNumber; // a newer pair arrived between the two: next time
    const off = new OffscreenCanvas(image.width, image.height).getContext('2d');
    off.drawImage(image, 0, 0);
    const mask = off.getImageData(0, 0, image.width, image.height).data;
    off.drawImage(frame, 0, 0, image.width, image.height);
    const rgba = off.getImageData(0, 0, image.width, image.height);
    for (let i = 0; i < mask.length; i += 4) rgba.data[i + 3] = mask[i];
    ctx.putImageData(rgba, 0, 0);
  } else {
    ctx.drawImage(image, 0, 0);
  }
  canvas.dataset.frame = String(image.frameNumber);
  return image.frameNumber;
}

function renderCameras(cameras) {
  $('no-cameras').hidden = cameras.length > 0;
  for (const cam of cameras) {
    let view = cameraViews.get(cam.id);
    if (!view) {
      const card = document.createElement('div'); card.className = 'camera'; card.dataset.camera = cam.id;
      const canvas = document.createElement('canvas'); canvas.className = 'checker';
      const info = document.createElement('p');
      card.append(canvas, info); $('cameras').append(card);
      view = { card, canvas, info, frameNumber: -1, busy: false };
      cameraViews.set(cam.id, view);
    }
    text(view.info, `${cam.id} · frame ${cam.frameNumber} · ${Number.isFinite(cam.e2eMs) ? `${cam.e2eMs} ms end to end` : ''} · ${cam.worker ?? ''}`);
    if (!view.busy && cam.ready && cam.frameNumber !== view.frameNumber) {
      view.busy = true;
      drawPreview(view, cam).then((drawn) => (view.frameNumber = drawn), () => undefined).finally(() => (view.busy = false));
    }
  }
}

function render(state) {
  const conn = $('conn');
  if (!state.kafka) { conn.textContent = 'API only (no broker configured)'; conn.className = 'pill'; }
  else if (state.kafka.error || !state.kafka.connected) { conn.textContent = `broker: ${state.kafka.error ?? 'not connected'}`; conn.className = 'pill bad'; }
  else if (state.kafka.waitingFor && state.kafka.waitingFor.length) {
    conn.textContent = `broker ${state.kafka.brokers}: waiting for topic ${state.kafka.waitingFor.join(', ')} (made when the first worker starts)`;
    conn.className = 'pill';
  } else { conn.textContent = `broker ${state.kafka.brokers}`; conn.className = 'pill ok'; }
  const pipeline = $('pipeline');
  if (state.kafka) { pipeline.textContent = `${state.kafka.topic ?? '?'} → ${state.kafka.outputTopic ?? '?'}`; pipeline.dataset.topic = state.kafka.topic ?? ''; }
  text($('http'), `HTTP in flight ${state.http.inFlight}, queued ${state.http.queued}`);
  renderWorkers(state.workers);
  renderLag(state.workers);
  chart($('throughput'), state.series, ['workers', 'http'], ['#2f6fde', '#e0892b']);
  chart($('latency'), state.series, ['p95'], ['#2f6fde']);
  renderCameras(state.cameras);
}

function connect() {
  const events = new EventSource(token ? `/v1/events?token=${encodeURIComponent(token)}` : '/v1/events');
  events.onmessage = (e) => render(JSON.parse(e.data));
  events.onerror = () => { const c = $('conn'); c.textContent = 'dashboard disconnected, retrying…'; c.className = 'pill bad'; };
}

async function tryRemove(file) {
  const info = $('result-info');
  info.textContent = `removing the background of ${file.name}…`;
  const started = performance.now();
  const res = await fetch('/v1/remove', { method: 'POST', body: file, headers: { 'Content-Type': file.type || 'application/octet-stream', ...authHeaders } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({ error: { code: String(res.status), message: res.statusText } }));
    info.textContent = `${body.error.code}: ${body.error.message}`;
    return;
  }
  const img = $('result');
  img.src = URL.createObjectURL(await res.blob());
  img.className = 'checker'; img.hidden = false;
  info.textContent = `${res.headers.get('X-Image-Size') ?? ''} in ${Math.round(performance.now() - started)} ms (${res.headers.get('Server-Timing') ?? ''})`;
}

const drop = $('drop');
drop.addEventListener('click', () => $('file').click());
$('file').addEventListener('change', () => $('file').files[0] && tryRemove($('file').files[0]));
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer.files[0]) tryRemove(e.dataTransfer.files[0]); });
connect();
