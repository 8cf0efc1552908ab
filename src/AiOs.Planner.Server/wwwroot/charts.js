// Small SVG charts drawn from the API's JSON: no library, no network. Every label is set as text (never parsed as markup).
'use strict';
const NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function text(x, y, s, attrs = {}) { return svg('text', { x, y, ...attrs }, String(s)); }

export const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** Memory per tier: one stacked bar per tier (its items), against the tier's capacity (the bar's full width). */
export function memoryBars(tiers, format) {
  const width = 640, row = 46, left = 120, barW = width - left - 20;
  const root = svg('svg', { viewBox: `0 0 ${width} ${tiers.length * row + 10}`, class: 'chart', role: 'img', 'aria-label': 'memory per tier against capacity' });
  tiers.forEach((t, i) => {
    const y = i * row + 8, scale = Math.max(t.capacity, t.used, 1);
    const g = svg('g', { class: 'tier', 'data-tier': t.name, 'data-used': t.used, 'data-capacity': t.capacity });
    g.append(text(0, y + 16, t.name, { class: 'label' }));
    g.append(svg('rect', { x: left, y, width: barW, height: 22, class: 'capacity' }));
    let x = left;
    t.items.forEach((item, j) => {
      const w = barW * item.bytes / scale;
      if (w <= 0) return;
      const r = svg('rect', { x, y, width: w, height: 22, fill: PALETTE[j % PALETTE.length] });
      r.append(svg('title', {}, `${item.name}: ${format(item.bytes)}${item.note ? ' (' + item.note + ')' : ''}`));
      g.append(r);
      x += w;
    });
    const over = t.used > t.capacity;
    g.append(svg('line', { x1: left + barW * t.capacity / scale, x2: left + barW * t.capacity / scale, y1: y - 3, y2: y + 25, class: 'limit' }));
    g.append(text(left, y + 36, `${format(t.used)} of ${format(t.capacity)}${over ? ' — over capacity' : ''}`, { class: over ? 'note over' : 'note' }));
    root.append(g);
  });
  return root;
}

/** Horizontal bars, one per row, of values in [0, max]. */
export function hbars(rows, max, format, ariaLabel) {
  const width = 640, row = 24, left = 150, barW = width - left - 90;
  const root = svg('svg', { viewBox: `0 0 ${width} ${rows.length * row + 6}`, class: 'chart', role: 'img', 'aria-label': ariaLabel });
  rows.forEach((r, i) => {
    const y = i * row + 4, w = max > 0 ? barW * Math.min(r.value, max) / max : 0;
    root.append(text(0, y + 13, r.label, { class: 'label' }));
    root.append(svg('rect', { x: left, y, width: barW, height: 16, class: 'capacity' }));
    root.append(svg('rect', { x: left, y, width: Math.max(w, 0), height: 16, fill: r.color ?? PALETTE[0] }));
    root.append(text(left + barW + 6, y + 13, format(r.value), { class: 'note' }));
  });
  return root;
}

/** A scatter of points (x, y) with optional highlighted ones and a line through them in x order. */
export function scatter(points, xLabel, yLabel, formatX, formatY, onPick) {
  const width = 640, height = 300, l = 70, b = 40, t = 10, r = 20;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': `${yLabel} against ${xLabel}` });
  if (points.length === 0) return root;
  const xs = points.map(p => p.x), ys = points.map(p => p.y);
  const x0 = Math.min(0, ...xs), x1 = Math.max(...xs) * 1.05 || 1, y0 = 0, y1 = Math.max(...ys) * 1.1 || 1;
  const X = v => l + (width - l - r) * (v - x0) / (x1 - x0), Y = v => height - b - (height - b - t) * (v - y0) / (y1 - y0);
  root.append(svg('line', { x1: l, x2: width - r, y1: height - b, y2: height - b, class: 'axis' }));
  root.append(svg('line', { x1: l, x2: l, y1: t, y2: height - b, class: 'axis' }));
  for (let i = 0; i <= 4; i++) {
    const vx = x0 + (x1 - x0) * i / 4, vy = y0 + (y1 - y0) * i / 4;
    root.append(text(X(vx), height - b + 16, formatX(vx), { class: 'tick', 'text-anchor': 'middle' }));
    root.append(text(l - 6, Y(vy) + 4, formatY(vy), { class: 'tick', 'text-anchor': 'end' }));
  }
  root.append(text((l + width - r) / 2, height - 6, xLabel, { class: 'label', 'text-anchor': 'middle' }));
  root.append(text(12, (t + height - b) / 2, yLabel, { class: 'label', 'text-anchor': 'middle', transform: `rotate(-90 12 ${(t + height - b) / 2})` }));
  const sorted = [...points].sort((a, c) => a.x - c.x);
  root.append(svg('polyline', { points: sorted.map(p => `${X(p.x)},${Y(p.y)}`).join(' '), class: 'front' }));
  for (const p of points) {
    const c = svg('circle', { cx: X(p.x), cy: Y(p.y), r: p.best ? 7 : 5, class: p.best ? 'point best' : 'point' });
    c.append(svg('title', {}, p.label));
    if (onPick) c.addEventListener('click', () => onPick(p));
    root.append(c);
  }
  return root;
}

/** Lines of y against x (several series), e.g. measured step times with the prediction as a flat line. */
export function lines(series, xLabel, yLabel, formatY) {
  const width = 640, height = 260, l = 70, b = 36, t = 10, r = 110;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': `${yLabel} against ${xLabel}` });
  const all = series.flatMap(s => s.points);
  if (all.length === 0) return root;
  const x0 = Math.min(...all.map(p => p.x)), x1 = Math.max(...all.map(p => p.x)) || 1, y1 = Math.max(...all.map(p => p.y)) * 1.1 || 1;
  const X = v => l + (width - l - r) * (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0)), Y = v => height - b - (height - b - t) * v / y1;
  root.append(svg('line', { x1: l, x2: width - r, y1: height - b, y2: height - b, class: 'axis' }));
  root.append(svg('line', { x1: l, x2: l, y1: t, y2: height - b, class: 'axis' }));
  for (let i = 0; i <= 4; i++) root.append(text(l - 6, Y(y1 * i / 4) + 4, formatY(y1 * i / 4), { class: 'tick', 'text-anchor': 'end' }));
  root.append(text((l + width - r) / 2, height - 6, xLabel, { class: 'label', 'text-anchor': 'middle' }));
  for (const v of new Set([x0, Math.round((x0 + x1) / 2), x1])) root.append(text(X(v), height - b + 14, v, { class: 'tick', 'text-anchor': 'middle' }));
  series.forEach((s, i) => {
    root.append(svg('polyline', { 'data-series': s.name, points: s.points.map(p => `${X(p.x)},${Y(p.y)}`).join(' '), fill: 'none', stroke: PALETTE[i], 'stroke-width': 2, 'stroke-dasharray': s.dashed ? '6 4' : '' }));
    root.append(text(width - r + 8, t + 14 + i * 16, s.name, { class: 'note', style: `fill: ${PALETTE[i]}` }));
  });
  return root;
}

/** One step's simulated operations as a Gantt chart: a row per resource, a box per operation, coloured by operation. */
export function gantt(spans, formatTime) {
  const resources = [...new Set(spans.map(s => s.resource))];
  const operations = [...new Set(spans.map(s => s.operation))];
  const width = 760, row = 22, left = 110, right = 10, top = 4, axis = 22, legendRow = 16;
  const legendRows = Math.ceil(operations.length / 5);
  const height = top + resources.length * row + axis + legendRows * legendRow + 6;
  const end = Math.max(1, ...spans.map(s => s.end_ns));
  const X = ns => left + (width - left - right) * ns / end;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': 'predicted timeline per resource' });
  resources.forEach((r, i) => {
    root.append(text(0, top + i * row + 14, r, { class: 'label' }));
    root.append(svg('rect', { x: left, y: top + i * row, width: width - left - right, height: row - 4, class: 'capacity' }));
  });
  for (const s of spans) {
    const i = resources.indexOf(s.resource), j = operations.indexOf(s.operation);
    const box = svg('rect', { x: X(s.start_ns), y: top + i * row, width: Math.max(0.5, X(s.end_ns) - X(s.start_ns)), height: row - 4, fill: PALETTE[j % PALETTE.length] });
    box.append(svg('title', {}, `${s.operation} layer ${s.layer}, micro-batch ${s.micro_batch} (${s.phase}): ${formatTime(s.start_ns / 1e9)} – ${formatTime(s.end_ns / 1e9)}`));
    root.append(box);
  }
  const y = top + resources.length * row;
  for (let k = 0; k <= 5; k++) root.append(text(X(end * k / 5), y + 14, formatTime(end * k / 5 / 1e9), { class: 'tick', 'text-anchor': k === 0 ? 'start' : k === 5 ? 'end' : 'middle' }));
  operations.forEach((o, j) => {
    const lx = left + (j % 5) * 130, ly = y + axis + Math.floor(j / 5) * legendRow;
    root.append(svg('rect', { x: lx, y: ly, width: 10, height: 10, fill: PALETTE[j % PALETTE.length] }));
    root.append(text(lx + 14, ly + 9, o, { class: 'note' }));
  });
  return root;
}
