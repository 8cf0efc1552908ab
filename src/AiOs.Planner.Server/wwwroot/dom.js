// Helpers every part of the page shares: elements, API calls, number formats.
'use strict';

export const GiB = 1024 ** 3;
export const bytes = b => b >= GiB ? `${(b / GiB).toFixed(1)} GiB` : `${(b / 1024 ** 2).toFixed(0)} MiB`;
export const secs = s => s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(1)} ms`;
export const num = n => Math.round(n).toLocaleString('en-US');

export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  for (const c of children) e.append(c);
  return e;
}

export async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(JSON.parse(text).error ?? text);
  return { text, get json() { return JSON.parse(text); } };
}
