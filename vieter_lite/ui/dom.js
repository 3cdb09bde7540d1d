// DOM building and formatting helpers. Data from the API only ever becomes text nodes
// or attribute values set one by one: never HTML.
const SVG_NS = 'http://www.w3.org/2000/svg';

export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  add(el, children);
  return el;
}

export function add(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// an http(s) URL from the API may be a link; any other scheme stays text
export function safeHref(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

export function externalLink(url) {
  const href = safeHref(url || '');
  return href ? h('a', {href, rel: 'noreferrer noopener', target: '_blank'}, url) : (url || '');
}

export function seconds(rfc3339) {
  return rfc3339 ? Date.parse(rfc3339) / 1000 : null;
}

export function fmtTime(rfc3339) {
  if (!rfc3339) return '—';
  const d = new Date(rfc3339);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function timeEl(rfc3339) {
  return rfc3339 ? h('time', {datetime: rfc3339, title: rfc3339}, fmtTime(rfc3339)) : '—';
}

export function fmtDuration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return '—';
  secs = Math.max(0, Math.round(secs));
  if (secs < 60) return `${secs}s`;
  const m = Math.floor(secs / 60), s = secs % 60;
  if (m < 60) return `${m}m ${String(s).padStart(2, '0')}s`;
  const hr = Math.floor(m / 60);
  return `${hr}h ${String(m % 60).padStart(2, '0')}m`;
}

export function buildDuration(build) {
  const start = seconds(build.started_at);
  if (start === null) return null;
  const end = seconds(build.ended_at) ?? Date.now() / 1000;
  return end - start;
}

export function fmtSize(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let n = bytes, i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

export function statusChip(status) {
  return h('span', {class: `chip st-${status}`}, status);
}

export function buildLink(id) {
  return h('a', {href: `#/builds/${id}`}, `#${id}`);
}

export function section(title, ...children) {
  return h('section', {class: 'card'}, h('h2', {}, title), ...children);
}

export function table(headers, rows, cls = '') {
  return h('div', {class: 'scroll'}, h('table', {class: cls},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {scope: 'col'}, x)))),
    h('tbody', {}, rows)));
}

export function empty(text) {
  return h('p', {class: 'muted empty'}, text);
}

export function errorBox(err) {
  const detail = err && err.detail ? err.detail : String(err && err.message ? err.message : err);
  return h('div', {class: 'error', role: 'alert'}, h('strong', {}, 'Error: '), detail);
}

// a diff as lines, each coloured by its first character
export function diffView(text) {
  return h('pre', {class: 'diff'}, (text || '').split('\n').map((line) => {
    const cls = line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del'
      : line.startsWith('@@') ? 'hunk' : '';
    return h('span', {class: cls}, line + '\n');
  }));
}

// copyable text: a read-only block and a button (the clipboard API needs https; the
// fallback selects the text for the user)
export function copyBlock(text, label) {
  const pre = h('pre', {class: 'copy', tabindex: '0'}, text);
  const button = h('button', {type: 'button', class: 'small', onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(pre);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      button.textContent = 'Selected: press Ctrl+C';
    }
  }}, label || 'Copy');
  return h('div', {class: 'copyblock'}, pre, button);
}

// replace an element's children (arrays flattened; null, undefined and false left out)
export function fill(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

export function fillId(id, ...children) {
  const el = document.getElementById(id);
  return el ? fill(el, ...children) : null;
}
