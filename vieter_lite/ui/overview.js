// The first screen: what failed since each target's last success, what is held for
// review, what runs, what is queued (and behind what), then every target.
import {can, getJSON, post, session} from './api.js';
import {buildDuration, buildLink, diffView, empty, errorBox, externalLink, fill, fmtDuration, h,
  section, statusChip, table, timeEl} from './dom.js';

const REFRESH_MS = 5000;
const IDLE_REFRESH_MS = 30000;

// builds that failed after the last success of their target (server-side when it can)
async function needsAttention() {
  if (session.contract) {
    const page = await getJSON('/api/v2/builds?since_last_success=true&states=failed,timeout' +
      '&order_by=-id&per_page=50');
    return page.resources;
  }
  const [failed, succeeded] = await Promise.all([
    getJSON('/api/v2/builds?states=failed,timeout&order_by=-id&per_page=100'),
    getJSON('/api/v2/builds?states=success&order_by=-id&per_page=100')]);
  return sinceLastSuccess(failed.resources, succeeded.resources);
}

// pure: the failed builds that ended after the latest success of the same target (ties
// in time go by id: a later build ended later)
export function sinceLastSuccess(failed, succeeded) {
  const keyOf = (b) => b.target_id ?? `${b.repo}/${b.arch}`;
  const later = (a, b) => (a.ended_at || '') > (b.ended_at || '')
    || ((a.ended_at || '') === (b.ended_at || '') && a.id > b.id);
  const lastOk = new Map();
  for (const b of succeeded) {
    const seen = lastOk.get(keyOf(b));
    if (!seen || later(b, seen)) lastOk.set(keyOf(b), b);
  }
  return failed.filter((b) => !lastOk.has(keyOf(b)) || later(b, lastOk.get(keyOf(b))));
}

function whatOf(build) {
  return build.target_id !== null && build.target_id !== undefined
    ? `target ${build.target_id} · ${build.repo}/${build.arch}` : `${build.repo}/${build.arch}`;
}

function failedList(builds) {
  if (!builds.length) return empty('Nothing failed since the last success of its target.');
  return h('ul', {class: 'items', id: 'failed'}, builds.map((b) => h('li', {class: 'item failed',
    'data-build': b.id},
  h('div', {class: 'row'}, buildLink(b.id), statusChip(b.status), h('span', {}, whatOf(b))),
  h('div', {class: 'muted'}, 'ended ', timeEl(b.ended_at),
    b.exit_code !== null ? ` · exit code ${b.exit_code}` : '',
    ` · ${fmtDuration(buildDuration(b))}`))));
}

function heldList(builds, rerender) {
  if (!builds.length) return empty('No build is held for review.');
  return h('ul', {class: 'items', id: 'held'}, builds.map((b) => {
    const status = h('div', {class: 'action-status'});
    const approve = can('builds:write') ? h('button', {type: 'button', class: 'approve',
      'data-build': b.id, onclick: async () => {
        approve.disabled = true;
        try {
          await post(`/api/v2/builds/${b.id}/start`);
          await rerender();  // the build moved on: the data differs, the screen follows
        } catch (err) {
          approve.disabled = false;
          fill(status, errorBox(err));
        }
      }}, 'Approve') : null;
    return h('li', {class: 'item held', 'data-build': b.id},
      h('div', {class: 'row'}, buildLink(b.id), statusChip('held'), h('span', {}, whatOf(b)),
        approve),
      h('details', {open: true}, h('summary', {}, `Changes to review (${b.hold.reason})`),
        diffView(b.hold.diff)), status);
  }));
}

function taskChips(build) {
  return h('span', {class: 'tasks'}, (build.tasks || []).map((t) =>
    h('span', {class: `chip task st-${t.status}`, title: `${t.name}: ${t.status}`},
      `${t.name}: ${t.status}`)));
}

function runningList(builds) {
  if (!builds.length) return empty('Nothing is building.');
  return h('ul', {class: 'items', id: 'running'}, builds.map((b) => h('li', {class: 'item',
    'data-build': b.id},
  h('div', {class: 'row'}, buildLink(b.id), statusChip(b.status), h('span', {}, whatOf(b)),
    h('span', {class: 'muted'}, b.runner ? `on ${b.runner}` : '')),
  h('div', {}, taskChips(b), h('span', {class: 'muted'}, ` ${fmtDuration(buildDuration(b))}`)))));
}

function queueList(builds) {
  if (!builds.length) return empty('The queue is empty.');
  return table(['Build', 'What', 'Queued', 'Blocked by'], builds.map((b) => h('tr', {'data-build': b.id},
    h('td', {}, buildLink(b.id)), h('td', {}, whatOf(b)), h('td', {}, timeEl(b.created_at)),
    h('td', {}, (b.blocked_by || []).length ? b.blocked_by.map((id, i) =>
      [i ? ', ' : '', buildLink(id)]) : '—'))), 'queue');
}

function nextRun(target) {
  const times = Object.values(target.next_run_at || {}).filter(Boolean).sort();
  return times.length ? timeEl(times[0]) : '—';
}

function badge(target) {
  const href = `/badge/${target.id}.svg`;
  return h('a', {href, class: 'badge-link', title: 'status badge'},
    session.contract ? h('img', {src: href, alt: `badge of target ${target.id}`, height: 20})
      : 'badge');
}

function targetsTable(targets) {
  if (!targets.length) return empty('No targets yet.');
  return table(['Target', 'Repo', 'Source', 'Last build', 'Next run', 'Badge'], targets.map((t) =>
    h('tr', {'data-target': t.id},
      h('td', {}, h('a', {href: `#/history/${t.id}`}, `${t.id}`)),
      h('td', {}, `${t.repo} (${(t.arch || []).join(', ')})`),
      h('td', {class: 'wrap'}, externalLink(t.url)),
      h('td', {}, t.last_build ? [buildLink(t.last_build.id), ' ', statusChip(t.last_build.status)] : '—'),
      h('td', {}, nextRun(t)), h('td', {}, badge(t)))), 'targets');
}

export async function overviewView(main, _params, signal) {
  let shown = '';
  const render = async () => {
    const [failed, active, targets] = await Promise.all([
      needsAttention(),
      getJSON('/api/v2/builds?states=pending,queued,running&order_by=id&per_page=200'),
      getJSON('/api/v2/targets?per_page=100')]);
    if (signal.aborted) return false;
    const builds = active.resources;
    // nothing changed: the screen stays as it is (an open diff, a button under the finger)
    const seen = JSON.stringify([failed, builds, targets]);
    if (seen === shown) return builds.some((b) => b.status === 'running' || b.status === 'queued');
    shown = seen;
    const held = builds.filter((b) => b.status === 'pending' && b.hold);
    const waiting = builds.filter((b) => b.status === 'pending' && !b.hold);
    const running = builds.filter((b) => b.status === 'running');
    const queued = builds.filter((b) => b.status === 'queued');
    const more = targets.pagination && targets.pagination.next
      ? h('p', {class: 'muted'}, `${targets.pagination.total_results} targets; the first 100 are shown.`) : null;
    fill(main,
      h('h1', {}, 'Overview'),
      section(`Failed (${failed.length})`, failedList(failed)),
      section(`Held for review (${held.length})`, heldList(held, render)),
      section(`Running (${running.length})`, runningList(running)),
      section(`Queue (${queued.length + waiting.length})`, queueList([...queued, ...waiting])),
      section('Targets', targetsTable(targets.resources), more));
    return running.length + queued.length > 0;
  };
  let busy = await render();
  // the screen follows what runs and waits (and, slower, everything else)
  while (!signal.aborted) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, busy ? REFRESH_MS : IDLE_REFRESH_MS);
      signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); });
    });
    if (signal.aborted || document.hidden) continue;
    try {
      busy = await render();
    } catch (err) {
      if (signal.aborted) return;
      main.prepend(errorBox(err));
    }
  }
}
