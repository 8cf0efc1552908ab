// The runs tab: run folders under --runs, predicted against measured, and the step chart that grows while a run trains.
'use strict';
import { h, api, secs, GiB } from './dom.js';
import { lines } from './charts.js';

const $ = id => document.getElementById(id);

let live = null;
export async function loadRuns() {
  const doc = (await api('/api/runs')).json;
  const list = $('runs-list');
  if (!doc.runs_folder) { list.replaceChildren(h('p', {}, 'No runs folder: start aios serve --runs DIR (the folder aios train writes runs/<id> into).')); return; }
  list.replaceChildren(h('p', {}, `Runs in ${doc.runs_folder}:`), h('div', { class: 'runs' }, ...doc.runs.map(r => {
    const a = h('a', { 'data-run': r.id }, r.id);
    a.addEventListener('click', () => openRun(r.id));
    return a;
  })));
}

async function openRun(id) {
  live?.abort();
  const out = $('run-detail');
  try {
    const run = (await api(`/api/runs/${encodeURIComponent(id)}`)).json;
    const table = h('table', { id: 'run-comparison' }, h('tr', {}, h('th', {}, 'quantity'), h('th', {}, 'predicted'), h('th', {}, 'measured'), h('th', {}, 'error')));
    for (const r of run.comparison) table.append(h('tr', {}, h('td', {}, r.quantity), h('td', {}, `${r.predicted.toFixed(3)} ${r.unit}`),
      h('td', {}, `${r.measured.toFixed(3)} ${r.unit}`), h('td', {}, r.error == null ? '—' : `${(r.error * 100).toFixed(1)}%`)));
    const chart = h('div', { id: 'run-chart' }), io = h('div', { id: 'run-io' }), memory = h('div', { id: 'run-memory' });
    const draw = steps => {
      chart.replaceChildren(lines([
        { name: 'measured', points: steps.map(s => ({ x: s.step, y: s.wall_ms / 1000 })) },
        ...(run.predicted ? [{ name: 'predicted', dashed: true, points: steps.map(s => ({ x: s.step, y: run.predicted.time_s })) }] : []),
      ], 'step', 'step time (s)', secs));
      io.replaceChildren(lines([
        { name: 'NVMe read', points: steps.map(s => ({ x: s.step, y: s.nvme_read_gbps })) },
        { name: 'NVMe write', points: steps.map(s => ({ x: s.step, y: s.nvme_write_gbps })) },
      ], 'step', 'GB/s', v => `${v.toFixed(2)} GB/s`));
      memory.replaceChildren(lines(memorySeries(steps, run.tiers), 'step', 'GiB', v => `${v.toFixed(1)} GiB`));
    };
    draw(run.steps);
    const report = h('a', { href: `/api/runs/${encodeURIComponent(id)}/report`, target: '_blank' }, 'Open the full report');
    out.replaceChildren(h('h3', {}, `Run ${id}: predicted vs measured`), table, run.spread ? h('p', {}, run.spread) : '', run.caveat ? h('p', { class: 'verdict error' }, run.caveat) : '',
      h('h3', {}, 'Step time against the prediction (live while the run trains)'), chart,
      h('h3', {}, 'NVMe bandwidth per step'), io, h('h3', {}, 'Memory per tier per step (dashed: predicted)'), memory, report);
    streamRun(id, run.steps, draw);
  } catch (e) { out.replaceChildren(h('p', { class: 'verdict error' }, e.message)); }
}

/** The run record's memory per tier and step, with the tier names of its comparison (RunComparison.MemoryTiers). */
const TIERS = [['device', 'peak_device_bytes', 'device peak'], ['pinned', 'pinned_bytes', 'pinned host'],
  ['host', 'peak_resident_bytes', 'host RSS peak'], ['nvme', 'nvme_swap_bytes', 'NVMe swap']];

/**
 * A measured line per tier the run records (a CPU run has no device figure; a run without NVMe offload no swap), in
 * GiB, each followed by its predicted level as a dashed line when the prediction has one.
 */
function memorySeries(steps, tiers) {
  const series = [];
  for (const [tier, field, name] of TIERS) {
    const points = steps.filter(s => s[field] != null).map(s => ({ x: s.step, y: s[field] / GiB }));
    if (points.length === 0) continue;
    series.push({ name, points });
    const predicted = tiers?.find(t => t.tier === tier)?.predicted_bytes;
    if (predicted > 0) series.push({ name: `${name} (pred.)`, dashed: true, points: steps.map(s => ({ x: s.step, y: predicted / GiB })) });
  }
  return series;
}

/** Follows the run's metrics.jsonl: steps the training run appends are drawn as they come. */
async function streamRun(id, steps, draw) {
  live = new AbortController();
  const seen = new Set(steps.map(s => s.step));
  try {
    const res = await fetch(`/api/runs/${encodeURIComponent(id)}/live`, { signal: live.signal });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const data = buffer.slice(0, end).split('\n').find(l => l.startsWith('data: '))?.slice(6);
        buffer = buffer.slice(end + 2);
        if (!data) continue;
        const s = JSON.parse(data);
        if (seen.has(s.step)) continue;
        seen.add(s.step);
        steps.push({ step: s.step, wall_ms: s.wall_ms, nvme_read_gbps: s.nvme_read_g_bps ?? s.nvme_read_gbps ?? 0,
          nvme_write_gbps: s.nvme_write_g_bps ?? s.nvme_write_gbps ?? 0, peak_resident_bytes: s.peak_resident_bytes ?? 0,
          peak_device_bytes: s.peak_device_bytes ?? null, pinned_bytes: s.pinned_bytes ?? null, nvme_swap_bytes: s.nvme_swap_bytes ?? null });
        draw(steps);
      }
    }
  } catch { /* left the run */ }
}
