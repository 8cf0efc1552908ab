// The planning page: settings panel → POST /api/plan (debounced) → verdict, fixes, memory bars, resources; tune with
// progress (server-sent events), what-if grid, downloads, runs. Every document comes from the API, which returns the
// CLI's --json documents; the page only draws them.
'use strict';
import { GROUPS, tooltip, get, set, fromFlag } from './fields.js';
import { memoryBars, hbars, scatter, gantt } from './charts.js';
import { GiB, bytes, secs, num, h, api } from './dom.js';
import { loadRuns } from './runs.js';

const $ = id => document.getElementById(id);
const state = { settings: {}, config: null, profileFile: null, hardwareEdited: null, modelUpload: null, hardwareUpload: null, lastPlan: null };
/** The request every planning call shares: model, hardware (edited or uploaded profiles are sent whole) and settings. */
function request(extra = {}) {
  const model = state.modelUpload ? state.modelUpload.json : $('model').value;
  const hardware = state.hardwareEdited ?? (state.hardwareUpload ? state.hardwareUpload.json : $('hardware').value);
  // Without a folder of its own, NVMe offload plans (and tunes) with the server's default folder, inside its --nvme-root.
  const settings = { ...state.settings };
  if (!settings.nvme_path && state.config.default_nvme_path) settings.nvme_path = state.config.default_nvme_path;
  return { model, model_name: state.modelUpload?.name, hardware, settings, ...extra };
}

// ---- settings panel -------------------------------------------------------------------------------------------
function buildPanel() {
  const form = $('settings');
  for (const g of GROUPS) {
    const fs = h('fieldset', {}, h('legend', {}, g.title));
    for (const f of g.fields) {
      const id = 'f-' + f.key.replace('.', '-');
      let input;
      if (f.type === 'select') {
        input = h('select', { id });
        for (const o of f.options) input.append(h('option', { value: o }, f.optionLabels?.[o] ?? o));
      } else if (f.type === 'checkbox') {
        input = h('input', { id, type: 'checkbox' });
      } else {
        input = h('input', { id, type: f.type, min: f.min, step: f.step ?? 1, placeholder: f.nullable ? 'profile' : undefined });
      }
      input.dataset.key = f.key;
      input.addEventListener(f.type === 'text' ? 'change' : 'input', () => { read(f, input); changed(); });
      const label = h('label', { title: tooltip(f), class: f.type === 'checkbox' ? 'check' : undefined, 'data-ds': f.ds },
        f.type === 'checkbox' ? input : '', h('span', {}, f.label + ' ', h('span', { class: 'key' }, '?')), f.type === 'checkbox' ? '' : input);
      fs.append(label);
    }
    form.append(fs);
  }
}

function read(f, input) {
  let v;
  if (f.type === 'checkbox') v = input.checked;
  else if (f.type === 'number') v = input.value === '' ? (f.nullable ? null : undefined) : Number(input.value);
  else if (f.type === 'select' && input.value === '') v = null;
  else v = input.value === '' && f.type === 'text' ? null : input.value;
  if (v !== undefined) set(state.settings, f.key, v);
}

function fill() {
  for (const g of GROUPS) for (const f of g.fields) {
    const input = document.querySelector(`[data-key="${f.key}"]`);
    const v = get(state.settings, f.key);
    if (f.type === 'checkbox') input.checked = !!v;
    else input.value = v ?? '';
  }
}

// ---- live plan ------------------------------------------------------------------------------------------------
let timer = null, changeAt = 0, seq = 0;
function changed() {
  if (!changeAt) changeAt = performance.now();
  clearTimeout(timer);
  timer = setTimeout(plan, 30);
}

async function plan() {
  const mine = ++seq, started = changeAt;
  changeAt = 0;
  let doc = null, error = null;
  try { doc = (await api('/api/plan', request())).json; } catch (e) { error = e.message; }
  if (mine !== seq) return; // a newer change is on its way
  if (doc) renderPlan(doc); else renderError(error);
  requestAnimationFrame(() => {
    if (started) window.aiosLastRedrawMs = performance.now() - started;
    document.body.dataset.planSeq = String(mine);
  });
  if (doc?.step) timeline(mine); else $('timeline-chart').replaceChildren();
}

/** The step's timeline (aios plan --timeline), fetched after the plan is drawn so it never delays the verdict. */
async function timeline(mine) {
  let text;
  try { text = (await api('/api/plan/timeline', request())).text; } catch { return; }
  if (mine !== seq) return;
  const spans = text.split('\n').filter(l => l).map(l => JSON.parse(l)).filter(l => l.type === 'span');
  $('timeline-chart').replaceChildren(gantt(spans, secs));
  document.body.dataset.timelineSeq = String(mine);
}

function renderError(message) {
  const v = $('verdict');
  v.className = 'verdict error';
  v.textContent = message;
  for (const id of ['problems', 'notes', 'metrics', 'memory-chart', 'resource-chart', 'bounds-chart', 'timeline-chart']) $(id).replaceChildren();
}

function renderPlan(doc) {
  state.lastPlan = doc;
  const v = $('verdict');
  v.className = doc.feasible ? 'verdict ok' : 'verdict bad';
  v.textContent = doc.feasible ? `Fits: ${doc.model.name} on ${doc.hardware.name}` : `Does not fit: ${doc.model.name} on ${doc.hardware.name}`;
  $('problems').replaceChildren(...doc.problems.map(problemItem));
  $('notes').replaceChildren(...doc.notes.map(n => h('li', {}, n)));
  const m = doc.memory, step = doc.step;
  const metric = (value, label) => h('div', { class: 'metric' }, h('b', {}, value), h('span', {}, label));
  $('metrics').replaceChildren(
    metric(step ? secs(step.time_s) : '—', 'predicted step time'),
    metric(step ? num(step.tokens_per_s) : '—', 'tokens/s'),
    metric(step ? step.bottleneck : '—', 'bottleneck'),
    metric(step ? step.model_tflops.toFixed(0) : '—', 'model TFLOPS per GPU'),
    metric(bytes(m.gpu_peak_bytes), 'GPU peak (allocated)'));
  const items = arr => arr.map(i => ({ name: i.name, bytes: i.bytes, note: i.note }));
  $('memory-chart').replaceChildren(memoryBars([
    { name: 'GPU', used: m.gpu_reserved_peak_bytes, capacity: m.gpu_capacity_bytes, items: items(m.breakdown.gpu) },
    { name: 'CPU pinned', used: m.cpu_pinned_bytes, capacity: m.cpu_capacity_bytes, items: items(m.breakdown.cpu_pinned) },
    { name: 'CPU RAM (all)', used: m.cpu_peak_bytes, capacity: m.cpu_capacity_bytes, items: items(m.breakdown.cpu_pinned.concat(m.breakdown.cpu_pageable)) },
    { name: 'NVMe', used: m.nvme_bytes, capacity: m.nvme_capacity_bytes, items: items(m.breakdown.nvme) },
  ], bytes));
  if (step) {
    const util = Object.entries(doc.utilization ?? {}).map(([k, u]) => ({ label: k, value: u, color: k === step.bottleneck ? '#e15759' : undefined }));
    $('resource-chart').replaceChildren(hbars(util, 1, u => `${(u * 100).toFixed(0)}%`, 'busy share per resource'));
    const crit = Object.entries(step.critical_path_s ?? {}).map(([k, s]) => ({ label: k, value: s, color: '#59a14f' }));
    const max = Math.max(step.time_s, ...crit.map(c => c.value));
    $('bounds-chart').replaceChildren(hbars([{ label: 'predicted step', value: step.time_s, color: '#4e79a7' }, ...crit], max, secs, 'lower bounds per resource'));
  } else {
    $('resource-chart').replaceChildren(h('p', {}, 'Memory-only plan: no step simulated.'));
    $('bounds-chart').replaceChildren();
  }
}

/** A problem line, with each "--flag value" suggestion as a button that applies it. */
function problemItem(text) {
  const li = h('li', {}, text);
  const tried = text.match(/Try (.*?)\.(\s|$)/);
  if (!tried) return li;
  for (const alternative of tried[1].split(', or ')) {
    const changes = [];
    const tokens = alternative.replace(/ with /g, ' ').split(/\s+/);
    for (let i = 0; i < tokens.length; i++) {
      if (!tokens[i].startsWith('--')) continue;
      const next = tokens[i + 1] && !tokens[i + 1].startsWith('--') ? tokens[i + 1] : undefined;
      const c = fromFlag(tokens[i], next);
      if (!c) { changes.length = 0; break; }
      if (c.takesValue) i++;
      changes.push(c);
    }
    if (changes.length === 0) continue;
    const button = h('button', { class: 'fix', type: 'button', title: 'Apply: ' + alternative }, alternative);
    button.addEventListener('click', () => { for (const c of changes) set(state.settings, c.key, c.value); fill(); changed(); });
    li.append(button);
  }
  return li;
}

// ---- model and hardware ---------------------------------------------------------------------------------------
async function loadProfileFile() {
  state.profileFile = null;
  state.hardwareEdited = null;
  if (state.hardwareUpload) state.profileFile = structuredClone(state.hardwareUpload.json);
  else state.profileFile = (await api(`/api/profiles/${encodeURIComponent($('hardware').value)}/file`)).json;
  const p = state.profileFile;
  const figure = f => typeof f === 'object' && f !== null ? f.value : f;
  $('hw-gpu-mem').value = p.gpu ? Math.round(figure(p.gpu.memory_gib)) : '';
  $('hw-ram').value = Math.round(figure(p.cpu.ram_gib));
  $('hw-drives').value = p.drives?.length ? p.drives[0].count : 0;
}

function editHardware() {
  const p = structuredClone(state.profileFile);
  if (p.gpu && $('hw-gpu-mem').value) p.gpu.memory_gib = Number($('hw-gpu-mem').value);
  if ($('hw-ram').value) p.cpu.ram_gib = Number($('hw-ram').value);
  if (p.drives?.length && $('hw-drives').value !== '') p.drives[0].count = Number($('hw-drives').value);
  p.name = `${p.name}-what-if`;
  state.hardwareEdited = p;
  changed();
}

function upload(inputId, selectId, key) {
  $(inputId).addEventListener('change', async () => {
    const file = $(inputId).files[0];
    if (!file) return;
    if (file.size > state.config.max_body_bytes) { renderError(`${file.name} is ${file.size} bytes; the server takes at most ${state.config.max_body_bytes}.`); return; }
    let json;
    try { json = JSON.parse(await file.text()); } catch (e) { renderError(`${file.name} is not valid JSON: ${e.message}`); return; }
    state[key] = { name: file.name.replace(/\.json$/i, '') === 'config' ? 'uploaded-config' : file.name, json };
    const select = $(selectId);
    select.querySelector('option[data-upload]')?.remove();
    select.prepend(h('option', { value: '', 'data-upload': true }, `uploaded: ${file.name}`));
    select.value = '';
    if (key === 'hardwareUpload') await loadProfileFile();
    changed();
  });
}

// ---- downloads and NVMe check -----------------------------------------------------------------------------------
function save(name, text) {
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'application/json' })), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

async function download(path, name) {
  try { save(name, (await api(path, request())).text); } catch (e) { renderError(e.message); }
}

async function checkNvme() {
  const out = $('nvme-result');
  out.hidden = false;
  const path = state.settings.nvme_path ?? state.config.default_nvme_path;
  try { out.textContent = (await api('/api/check-nvme', request({ path }))).text; } catch (e) { out.textContent = 'error: ' + e.message; }
}

// ---- tune (server-sent events over a POST) ------------------------------------------------------------------------
let tuneAbort = null;
async function tune() {
  const progress = $('tune-progress'), label = progress.querySelector('span'), bar = progress.querySelector('.bar');
  const budget = Number($('tune-budget').value);
  tuneAbort = new AbortController();
  $('tune-start').disabled = true;
  $('tune-cancel').disabled = false;
  progress.hidden = false;
  label.textContent = 'starting…';
  $('tune-result').replaceChildren();
  $('pareto-chart').replaceChildren();
  try {
    const res = await fetch('/api/tune', { method: 'POST', signal: tuneAbort.signal, headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify(request({ objective: $('tune-objective').value, budget, global_batch: $('tune-global-batch').value === '' ? null : Number($('tune-global-batch').value),
        max_micro_batch: Number($('tune-max-micro').value), max_grad_accumulation: Number($('tune-max-accumulation').value), memory_headroom: Number($('tune-headroom').value) })) });
    if (!res.ok) throw new Error((await res.json()).error);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const raw = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = raw.match(/^event: (.*)$/m)?.[1];
        const data = raw.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n');
        if (name === 'progress') {
          const p = JSON.parse(data);
          // The search may stop short of its budget (nothing left that could win), so the bar only reaches 100% at the result.
          bar.style.setProperty('--p', `${Math.min(99, 100 * p.evaluated / Math.max(1, p.budget))}%`);
          const best = p.best_tokens_per_s > 0 ? `, best ${num(p.best_tokens_per_s)} tokens/s` : '';
          label.textContent = `searching… ${num(p.evaluated)} of ${num(p.budget)} candidates, ${p.elapsed_s.toFixed(1)} s${best}`;
        } else if (name === 'cancelled') {
          label.textContent = 'cancelled';
        } else if (name === 'result') {
          bar.style.setProperty('--p', '100%');
          label.textContent = 'done';
          renderTune(JSON.parse(data));
        }
      }
    }
  } catch (e) {
    label.textContent = e.name === 'AbortError' ? 'cancelled' : 'error: ' + e.message;
  } finally {
    $('tune-start').disabled = false;
    $('tune-cancel').disabled = true;
    tuneAbort = null;
  }
}

function renderTune(doc) {
  const out = $('tune-result');
  if (doc.problems.length) { out.replaceChildren(...doc.problems.map(p => h('p', { class: 'verdict error' }, `${p.message} (change ${p.flag})`))); return; }
  if (!doc.best) { out.replaceChildren(h('p', { class: 'verdict bad' }, 'Nothing fits.'), ...doc.explanation.map(l => h('p', {}, l))); return; }
  const best = doc.best;
  const apply = h('button', { type: 'button', id: 'tune-apply' }, 'Use the best settings');
  apply.addEventListener('click', () => use(best.settings));
  out.replaceChildren(
    h('p', { class: 'verdict ok', id: 'tune-best' }, `Best: ${num(best.tokens_per_s)} tokens/s, step ${secs(best.step_time_s)}, bottleneck ${best.bottleneck}`),
    h('p', {}, best.description), apply,
    h('p', {}, `${num(doc.evaluated)} candidates evaluated, ${num(doc.simulated)} simulated, ${num(doc.feasible)} fit, in ${doc.elapsed_s.toFixed(1)} s.`),
    ...doc.explanation.map(l => h('p', {}, l)));
  const points = doc.pareto_front.map(c => ({ x: c.host_peak_bytes / GiB, y: c.tokens_per_s, best: c.description === best.description, label: `${c.description}: ${num(c.tokens_per_s)} tokens/s, host ${bytes(c.host_peak_bytes)}`, c }));
  $('pareto-chart').replaceChildren(h('h3', {}, 'Pareto front: throughput against host RAM (click a point to use it)'),
    scatter(points, 'host RAM peak (GiB)', 'tokens/s', x => x.toFixed(1), y => num(y), p => use(p.c.settings)));
}

/** Takes a tuned candidate's settings back to the plan (the tuner's placeholder NVMe folder becomes the page's). */
function use(settings) {
  state.settings = structuredClone(settings);
  if (state.settings.nvme_path === '/path/to/nvme') delete state.settings.nvme_path;
  fill();
  switchTab('plan');
  changed();
}

// ---- what-if ------------------------------------------------------------------------------------------------------
async function whatIf() {
  const checked = id => [...$(id).querySelectorAll('input:checked')].map(i => i.value);
  const out = $('whatif-result');
  out.replaceChildren(h('p', {}, 'comparing…'));
  try {
    const doc = (await api('/api/whatif', { models: checked('whatif-models'), hardware: checked('whatif-hardware'), seq_len: Number($('whatif-seq').value),
      budget: Number($('whatif-budget').value), upgrades: $('whatif-upgrades').checked })).json;
    const models = [...new Set(doc.cells.map(c => c.model))];
    const rows = [...new Set(doc.cells.map(c => `${c.hardware}\u0000${c.variant}`))];
    const table = h('table', { id: 'whatif-table' }, h('tr', {}, h('th', {}, 'machine'), ...models.map(m => h('th', {}, m))));
    for (const r of rows) {
      const [hw, variant] = r.split('\u0000');
      const tr = h('tr', {}, h('td', {}, variant === 'as is' ? hw : `${hw}: ${variant}`));
      for (const m of models) {
        const c = doc.cells.find(x => x.model === m && x.hardware === hw && x.variant === variant);
        tr.append(h('td', { title: c?.note || c?.settings || '' }, c?.fits ? `${num(c.tokens_per_s)} (${c.bottleneck})` : 'no fit'));
      }
      table.append(tr);
    }
    out.replaceChildren(table);
  } catch (e) { out.replaceChildren(h('p', { class: 'verdict error' }, e.message)); }
}

// ---- start ----------------------------------------------------------------------------------------------------------
function switchTab(tab) {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === tab);
  for (const v of document.querySelectorAll('.view')) v.classList.toggle('active', v.id === 'view-' + tab);
  if (tab === 'runs') loadRuns();
}

async function start() {
  const [models, profiles, config] = await Promise.all([api('/api/models'), api('/api/profiles'), api('/api/config')]);
  state.config = config.json;
  state.settings = structuredClone(config.json.defaults);
  const byParams = models.json.models.sort((a, b) => a.params - b.params);
  $('model').replaceChildren(...byParams.map(m => h('option', { value: m.name }, `${m.name} (${(m.params / 1e9).toFixed(2)} B)`)));
  $('hardware').replaceChildren(...profiles.json.profiles.map(p => h('option', { value: p.name }, p.name)));
  $('model').value = byParams.some(m => m.name === 'gpt2-xl') ? 'gpt2-xl' : byParams[0].name;
  $('hardware').value = profiles.json.profiles.some(p => p.name === 'h200-1x') ? 'h200-1x' : profiles.json.profiles[0].name;
  for (const m of byParams) $('whatif-models').append(h('label', {}, h('input', { type: 'checkbox', value: m.name, checked: m.name === $('model').value }), m.name));
  for (const p of profiles.json.profiles) $('whatif-hardware').append(h('label', {}, h('input', { type: 'checkbox', value: p.name, checked: p.name === $('hardware').value }), p.name));
  buildPanel();
  fill();
  if (state.config.default_nvme_path) $('f-nvme_path').placeholder = state.config.default_nvme_path;
  $('model').addEventListener('change', () => { state.modelUpload = null; $('model').querySelector('option[data-upload]')?.remove(); changed(); });
  $('hardware').addEventListener('change', async () => { state.hardwareUpload = null; $('hardware').querySelector('option[data-upload]')?.remove(); await loadProfileFile(); changed(); });
  upload('model-upload', 'model', 'modelUpload');
  upload('hardware-upload', 'hardware', 'hardwareUpload');
  for (const id of ['hw-gpu-mem', 'hw-ram', 'hw-drives']) $(id).addEventListener('input', editHardware);
  $('hw-reset').addEventListener('click', async () => { await loadProfileFile(); changed(); });
  $('download-ds').addEventListener('click', () => download('/api/ds-config', 'ds_config.json'));
  $('download-settings').addEventListener('click', () => download('/api/settings-file', 'aios-settings.json'));
  $('check-nvme').addEventListener('click', checkNvme);
  $('tune-start').addEventListener('click', tune);
  // Closing the stream alone stops the search too, but only once the server notices; DELETE stops it now and answers
  // once it has stopped. It goes first, while the tune surely runs (after, it might have stopped already: a 404).
  $('tune-cancel').addEventListener('click', async () => {
    const abort = tuneAbort;
    if (!abort) return;
    $('tune-cancel').disabled = true;
    await fetch('/api/tune', { method: 'DELETE' }).catch(() => {});
    abort.abort();
  });
  $('whatif-run').addEventListener('click', whatIf);
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => switchTab(b.dataset.tab));
  await loadProfileFile();
  changed();
}

start().catch(e => renderError(e.message));
