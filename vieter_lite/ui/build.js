// One build (status, tasks, source, packages, deliveries, the log followed live) and the
// paginated list of all builds.
import {can, followLog, getJSON, localPath, post, request, session} from './api.js';
import {initialStyle, parseLine} from './ansi.js';
import {buildDuration, buildLink, diffView, empty, errorBox, externalLink, fill, fillId,
  fmtDuration, h, seconds, section, statusChip, table, timeEl} from './dom.js';

const TAIL_BYTES = 128 * 1024;
const FINISHED = ['success', 'failed', 'timeout', 'cancelled'];

// --- the log ---------------------------------------------------------------------------

class LogView {
  constructor(buildId, firstLine) {
    this.buildId = buildId;
    this.next = firstLine; // the number of the next line to add
    this.partial = ''; // the text of the last line, still without its newline
    this.partialEl = null;
    this.style = initialStyle();
    this.el = h('div', {class: 'log', id: 'log', role: 'log'});
  }

  lineEl(number, text) {
    const style = {...this.style};
    const segments = parseLine(text, style);
    const body = h('span', {class: 'text'}, segments.map((s) =>
      (s.cls ? h('span', {class: s.cls}, s.text) : s.text)));
    const el = h('div', {class: 'line', id: `L${number}`},
      h('a', {class: 'ln', href: `#/builds/${this.buildId}/L${number}`, 'aria-label': `line ${number}`},
        String(number)), body);
    return [el, style];
  }

  // text as it comes: whole lines are final, the last one is redrawn until it ends
  append(text) {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop();
    // the end of the log in view: it stays in view as lines come (else the reader stays put)
    const end = this.el.getBoundingClientRect().bottom;
    const atEnd = end >= 0 && end <= window.innerHeight + 40;
    if (this.partialEl) { this.partialEl.remove(); this.partialEl = null; }
    const frag = document.createDocumentFragment();
    for (const line of parts) {
      const [el, style] = this.lineEl(this.next, line);
      this.style = style;
      this.next += 1;
      frag.append(el);
    }
    if (this.partial) {
      [this.partialEl] = this.lineEl(this.next, this.partial);
      frag.append(this.partialEl);
    }
    this.el.append(frag);
    if (this.following && atEnd && this.el.lastElementChild) {
      this.el.lastElementChild.scrollIntoView({block: 'end'});
    }
  }
}

function countNewlines(bytes) {
  let n = 0;
  for (const b of bytes) if (b === 10) n += 1;
  return n;
}

// the last 128 KiB (a Range request), numbered from the whole log's line count
async function loadTail(buildId, signal) {
  const path = `/api/v2/builds/${buildId}/log/content`;
  const head = await request(path, {method: 'HEAD', signal});
  const size = Number(head.headers.get('Content-Length') || '0');
  if (size === 0) return {text: '', size: 0, firstLine: 1, cut: false};
  const start = Math.max(0, size - TAIL_BYTES);
  const resp = await request(path, {headers: {Range: `bytes=${start}-`}, signal});
  let bytes = new Uint8Array(await resp.arrayBuffer());
  const range = /\/(\d+)$/.exec(resp.headers.get('Content-Range') || '');
  const total = range ? Number(range[1]) : start + bytes.length;
  let firstLine = 1;
  if (start > 0) {
    const cut = bytes.indexOf(10);
    bytes = cut >= 0 ? bytes.subarray(cut + 1) : new Uint8Array(0);
    const meta = await getJSON(`/api/v2/builds/${buildId}/log?offset=${total}`, {signal});
    const tailLines = countNewlines(bytes) + (bytes.length && bytes[bytes.length - 1] !== 10 ? 1 : 0);
    firstLine = Math.max(1, meta.lines - tailLines + 1);
  }
  return {text: new TextDecoder().decode(bytes), size: total, firstLine, cut: start > 0};
}

export function scrollToLine(line) {
  if (!line) return;
  const el = document.getElementById(`L${line}`);
  if (el) {
    for (const old of document.querySelectorAll('.line.target')) old.classList.remove('target');
    el.classList.add('target');
    el.scrollIntoView({block: 'center'});
  }
}

async function wholeLog(buildId, logView, note) {
  const resp = await request(`/api/v2/builds/${buildId}/log/content`);
  const text = await resp.text();
  const fresh = new LogView(buildId, 1);
  fresh.append(text);
  logView.el.replaceWith(fresh.el);
  fill(note, 'The whole log is shown.');
}

// --- the build page ------------------------------------------------------------------

function facts(build) {
  const wait = build.started_at ? seconds(build.started_at) - seconds(build.created_at) : null;
  const rows = [
    ['Status', statusChip(build.status)],
    ['Target', build.target_id !== null ? h('a', {href: `#/history/${build.target_id}`},
      `target ${build.target_id}`) : 'a manifest build'],
    ['Repo', `${build.repo} / ${build.arch}`],
    ['Source', build.source ? [build.source.kind, ' ', externalLink(build.source.url || '')] : '—'],
    ['Owner', build.owner && build.owner.name ? build.owner.name : '—'],
    ['Runner', build.runner || '—'],
    ['Created', timeEl(build.created_at)],
    ['Started', timeEl(build.started_at)],
    ['Ended', timeEl(build.ended_at)],
    ['Duration', fmtDuration(buildDuration(build))],
    ['Waited', fmtDuration(wait)],
    ['Exit code', build.exit_code ?? '—'],
    ['Tags', (build.tags || []).join(', ') || '—'],
  ];
  return h('dl', {class: 'facts'}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function tasksTable(build) {
  const box = table(['Task', 'Status', 'Log'], (build.tasks || []).map((t) => h('tr', {'data-task': t.name},
    h('td', {}, t.name), h('td', {}, statusChip(t.status)),
    h('td', {}, h('button', {type: 'button', class: 'small', onclick: async (event) => {
      const cell = event.target.parentElement;
      try {
        const text = await (await request(localPath(t.log))).text();
        fill(cell, h('pre', {class: 'tasklog'}, text || '(empty)'));
      } catch (err) {
        fill(cell, errorBox(err));
      }
    }}, 'show')))), 'tasks');
  return [h('p', {class: 'muted'}, `The whole build: ${fmtDuration(buildDuration(build))} ` +
    '(the tasks\' own times are not recorded).'), box];
}

function packagesTable(build) {
  if (!(build.packages || []).length) return empty('No packages published by this build.');
  return table(['Package', 'Version', 'Arch', 'File'], build.packages.map((p) => h('tr', {},
    h('td', {}, h('a', {href: `#/repos/${encodeURIComponent(build.repo)}/${encodeURIComponent(build.arch)}`}, p.name)),
    h('td', {}, p.version), h('td', {}, p.arch), h('td', {class: 'wrap'}, p.filename))));
}

async function deliveries(buildId) {
  const page = await getJSON(`/api/v2/builds/${buildId}/deliveries?per_page=50`);
  if (!page.resources.length) return empty('No notifications were sent for this build.');
  return table(['When', 'Notification', 'Result', 'Delivery'], page.resources.map((d) => h('tr', {},
    h('td', {}, timeEl(d.created_at)),
    h('td', {class: 'wrap'}, `${d.action} (${d.condition}) to ${d.destination}`),
    h('td', {class: 'wrap'}, d.error ? d.error : `HTTP ${d.response_status}`),
    h('td', {}, `${d.delivery.status}, attempt ${d.delivery.attempts}`,
      d.delivery.next_at ? [', next ', timeEl(d.delivery.next_at)] : null))), 'deliveries');
}

async function manifest(buildId) {
  const text = await (await request(`/api/v2/builds/${buildId}/manifest`)).text();
  return h('pre', {class: 'manifest'}, text);
}

function actions(build, refresh) {
  const status = h('div', {class: 'action-status'});
  const act = (label, verb, cls) => h('button', {type: 'button', class: cls, id: `${verb}-build`,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        await post(`/api/v2/builds/${build.id}/${verb}`);
        await refresh();
      } catch (err) {
        event.target.disabled = false;
        fill(status, errorBox(err));
      }
    }}, label);
  const buttons = [];
  if (can('builds:write') && build.status === 'pending') {
    buttons.push(act(build.hold ? 'Approve' : 'Start', 'start', 'approve'));
  }
  if (can('builds:write') && ['pending', 'queued', 'running'].includes(build.status)) {
    buttons.push(act('Cancel', 'cancel', 'danger'));
  }
  return h('div', {class: 'actions'}, buttons, status);
}

export async function buildView(main, [id, line], signal) {
  const build = await getJSON(`/api/v2/builds/${id}`, {signal});
  const header = h('div', {id: 'build-head'});
  const factsBox = h('div', {});
  const tasksBox = h('div', {});
  const refresh = async () => {
    const fresh = await getJSON(`/api/v2/builds/${id}`, {signal});
    draw(fresh);
    return fresh;
  };
  const draw = (b) => {
    fill(header, h('h1', {}, `Build #${b.id} `, statusChip(b.status)), actions(b, refresh));
    fill(factsBox, facts(b));
    fill(tasksBox, tasksTable(b));
  };
  draw(build);
  const logNote = h('p', {class: 'muted', id: 'log-note'});
  const logBox = h('div', {});
  fill(main, header,
    build.hold ? section('Held for review', diffView(build.hold.diff)) : null,
    section('Tasks', tasksBox),
    section('Log', logNote, logBox),
    section('Build', factsBox),
    section('Packages', packagesTable(build)),
    section('Manifest', h('div', {id: 'manifest'}, 'Loading…')),
    section('Notifications', h('div', {id: 'deliveries'}, 'Loading…')),
    build.note ? section('Note', h('pre', {class: 'note'}, build.note)) : null);
  // the public dashboard (no token) does not show manifests
  const manifestOf = session.token ? manifest
    : async () => h('p', {class: 'muted'}, 'Sign in to see the manifest.');
  for (const [boxId, load] of [['manifest', manifestOf], ['deliveries', deliveries]]) {
    load(id).then((el) => fillId(boxId, el))
      .catch((err) => fillId(boxId, errorBox(err)));
  }

  const tail = await loadTail(id, signal);
  const log = new LogView(id, tail.firstLine);
  log.append(tail.text);
  fill(logBox, log.el);
  const whole = h('button', {type: 'button', class: 'small', id: 'whole-log', onclick: () =>
    wholeLog(id, log, logNote).catch((err) => fill(logNote, errorBox(err)))},
  'Show the whole log');
  const emptyNote = h('span', {}, tail.size ? '' : 'The log is empty so far.');
  fill(logNote, tail.cut ? ['The last 128 KiB of the log. ', whole] : emptyNote);
  scrollToLine(line);
  if (FINISHED.includes(build.status)) {
    // a finished build's log may still be delivered: follow it until it is DONE
    const meta = await getJSON(`/api/v2/builds/${id}/log?offset=${tail.size}`, {signal});
    if (meta.status === 'DONE') return;
  }
  log.following = true;
  logNote.prepend(h('span', {class: 'live', id: 'live'}, 'live '));
  const poll = setInterval(() => { refresh().catch(() => {}); }, 5000);
  signal.addEventListener('abort', () => clearInterval(poll));
  try {
    await followLog(id, tail.size, (text) => {
      emptyNote.remove();
      log.append(text);
    }, signal);
  } finally {
    clearInterval(poll);
    document.getElementById('live')?.remove();
  }
  if (!signal.aborted) await refresh();
}

// --- all builds ------------------------------------------------------------------------

export async function buildsView(main, _params, signal) {
  const list = h('div', {});
  const more = h('div', {});
  const load = async (path) => {
    const page = await getJSON(path, {signal});
    list.append(table(['Build', 'Status', 'Repo', 'Created', 'Duration'], page.resources.map((b) =>
      h('tr', {'data-build': b.id}, h('td', {}, buildLink(b.id)), h('td', {}, statusChip(b.status)),
        h('td', {}, `${b.repo}/${b.arch}`), h('td', {}, timeEl(b.created_at)),
        h('td', {}, fmtDuration(buildDuration(b)))))));
    const next = page.pagination.next;
    fill(more, next ? h('button', {type: 'button', id: 'more', onclick: () =>
      load(localPath(next.href)).catch((err) => fill(more, errorBox(err)))}, 'More') : null);
  };
  fill(main, h('h1', {}, 'Builds'), h('section', {class: 'card'}, list, more));
  await load('/api/v2/builds?order_by=-id&per_page=50');
}

