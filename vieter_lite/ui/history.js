// History: build durations, success rate and queue waits over time, overall or per target.
import {allPages, getJSON, session} from './api.js';
import {bucketize, secondsChart, successChart} from './charts.js';
import {fill, h, section} from './dom.js';

const DAYS = 30;
const iso = (secs) => new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

async function buckets(targetId, signal) {
  const until = Math.floor(Date.now() / 1000);
  const since = until - DAYS * 86400;
  const scope = targetId ? `&target_id=${targetId}` : '';
  if (session.contract) {
    const stats = await getJSON(`/api/v2/stats/builds?bucket=day&since=${iso(since)}` +
      `&until=${iso(until)}${scope}`, {signal});
    return stats.buckets;
  }
  // a server without the stats route: the same buckets from the builds list
  const filter = targetId ? `&target_ids=${targetId}` : '';
  const builds = await allPages(`/api/v2/builds?created_ats[gte]=${iso(bucketStartDay(since))}` +
    `&order_by=id&per_page=1000${filter}`);
  return bucketize(builds, 'day', since, until);
}

function bucketStartDay(secs) {
  return Math.floor(secs / 86400) * 86400;
}

export async function historyView(main, [targetId], signal) {
  const targets = (await getJSON('/api/v2/targets?per_page=200', {signal})).resources;
  const data = await buckets(targetId, signal);
  const select = h('select', {id: 'target-select', 'aria-label': 'target', onchange: (e) => {
    location.hash = e.target.value ? `#/history/${e.target.value}` : '#/history';
  }}, h('option', {value: ''}, 'All builds'), targets.map((t) => h('option', {value: t.id,
    selected: String(t.id) === targetId}, `target ${t.id} (${t.repo})`)));
  const sum = (key) => data.reduce((n, b) => n + b[key], 0);
  const [total, ok, failed, cancelled] = ['builds', 'success', 'failed', 'cancelled'].map(sum);
  fill(main,
    h('h1', {}, targetId ? `History of target ${targetId}` : 'History'),
    h('div', {class: 'toolbar'}, h('label', {for: 'target-select'}, 'Show '), select,
      targetId ? h('a', {href: `#/builds`}, ' all builds') : null),
    h('p', {id: 'history-summary'}, `The last ${DAYS} days: ${total} builds, ${ok} succeeded, ` +
      `${failed} failed, ${cancelled} cancelled` +
      `${ok + failed ? ` (${Math.round((100 * ok) / (ok + failed))}% success)` : ''}.`),
    section('Success rate per day', successChart(data)),
    section('Build duration', secondsChart(data, [{key: 'duration_max', label: 'longest', cls: 's2'},
      {key: 'duration_p50', label: 'median', cls: 's1'}], 'Build duration per day')),
    section('Queue wait', secondsChart(data, [{key: 'wait_max', label: 'longest', cls: 's2'},
      {key: 'wait_p50', label: 'median', cls: 's1'}], 'Wait before a build started, per day')));
}
