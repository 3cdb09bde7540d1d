// Charts drawn as SVG by the page itself: a bar chart of success rates and line charts of
// durations and waits, from the buckets of /api/v2/stats/builds (or the same computed here).
import {fmtDuration, h} from './dom.js';

const W = 640, H = 220, L = 56, R = 12, T = 14, B = 34;

function frame(title, yMax, yFormat, buckets) {
  const svg = h('svg:svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img',
    'aria-label': title});
  svg.append(h('svg:title', {}, title));
  for (const frac of [0, 0.5, 1]) {
    const y = T + (H - T - B) * (1 - frac);
    svg.append(h('svg:line', {x1: L, x2: W - R, y1: y, y2: y, class: 'grid'}));
    svg.append(h('svg:text', {x: L - 6, y: y + 4, class: 'axis', 'text-anchor': 'end'},
      yFormat(yMax * frac)));
  }
  if (buckets.length) {
    const label = (b) => b.start.slice(0, b.start.endsWith('T00:00:00Z') ? 10 : 16).replace('T', ' ');
    svg.append(h('svg:text', {x: L, y: H - 10, class: 'axis'}, label(buckets[0])));
    svg.append(h('svg:text', {x: W - R, y: H - 10, class: 'axis', 'text-anchor': 'end'},
      label(buckets[buckets.length - 1])));
  }
  return svg;
}

function xOf(i, n) {
  return n <= 1 ? (L + W - R) / 2 : L + ((W - L - R) * i) / (n - 1);
}

export function successChart(buckets, title = 'Success rate') {
  const svg = frame(title, 1, (v) => `${Math.round(v * 100)}%`, buckets);
  const n = buckets.length;
  const slot = (W - L - R) / Math.max(n, 1);
  buckets.forEach((b, i) => {
    if (b.success_rate === null || b.success_rate === undefined) return;
    const height = (H - T - B) * b.success_rate;
    const cls = b.success_rate >= 0.999 ? 'bar ok' : b.success_rate >= 0.5 ? 'bar warn' : 'bar bad';
    const rect = h('svg:rect', {x: L + slot * i + slot * 0.1, width: Math.max(slot * 0.8, 1),
      y: H - B - Math.max(height, 3), height: Math.max(height, 3), class: cls});
    rect.append(h('svg:title', {}, `${b.start}: ${b.success}/${b.builds} succeeded`));
    svg.append(rect);
  });
  return svg;
}

// series: [{key, label, cls}] read from each bucket (seconds; null = no point)
export function secondsChart(buckets, series, title) {
  const values = buckets.flatMap((b) => series.map((s) => b[s.key])).filter((v) => v !== null && v !== undefined);
  const yMax = Math.max(1, ...values);
  const svg = frame(title, yMax, fmtDuration, buckets);
  const n = buckets.length;
  const yOf = (v) => T + (H - T - B) * (1 - v / yMax);
  for (const s of series) {
    const points = buckets.map((b, i) => [i, b[s.key]]).filter(([, v]) => v !== null && v !== undefined);
    if (points.length > 1) {
      svg.append(h('svg:polyline', {class: `line ${s.cls}`,
        points: points.map(([i, v]) => `${xOf(i, n).toFixed(1)},${yOf(v).toFixed(1)}`).join(' ')}));
    }
    for (const [i, v] of points) {
      const dot = h('svg:circle', {cx: xOf(i, n).toFixed(1), cy: yOf(v).toFixed(1), r: 3,
        class: `dot ${s.cls}`});
      dot.append(h('svg:title', {}, `${buckets[i].start}: ${s.label} ${fmtDuration(v)}`));
      svg.append(dot);
    }
  }
  const legend = h('div', {class: 'legend'}, series.map((s) => h('span', {class: `key ${s.cls}`}, s.label)));
  return h('figure', {class: 'chartbox'}, h('figcaption', {}, title), svg, legend);
}

// --- the buckets computed from builds (a server without /api/v2/stats/builds), by the
// same rules: a build counts in the bucket of its created_at; durations of the builds that
// ran to an end, waits of every build that started; nearest-rank percentiles
function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
}

function bucketStart(seconds, bucket) {
  const size = bucket === 'hour' ? 3600 : 86400;
  return Math.floor(seconds / size) * size;
}

const iso = (secs) => new Date(secs * 1000).toISOString().replace('.000Z', 'Z');
const secondsOf = (rfc3339) => (rfc3339 ? Date.parse(rfc3339) / 1000 : null);

// builds -> the stats route's buckets, oldest first, one per day (or hour) from `since`
export function bucketize(builds, bucket, since, until) {
  const size = bucket === 'hour' ? 3600 : 86400;
  const out = [];
  const index = new Map();
  for (let s = bucketStart(since, bucket); s < until; s += size) {
    index.set(s, out.length);
    out.push({start: iso(s), builds: 0, success: 0, failed: 0, cancelled: 0, durations: [], waits: []});
  }
  for (const b of builds) {
    const created = secondsOf(b.created_at);
    const slot = created === null || created >= until ? undefined : index.get(bucketStart(created, bucket));
    if (slot === undefined) continue;
    const agg = out[slot];
    agg.builds += 1;
    if (b.status === 'success') agg.success += 1;
    else if (b.status === 'failed' || b.status === 'timeout') agg.failed += 1;
    else if (b.status === 'cancelled') agg.cancelled += 1;
    const started = secondsOf(b.started_at), ended = secondsOf(b.ended_at);
    if (started !== null) agg.waits.push(started - created);
    if (started !== null && ended !== null && ['success', 'failed', 'timeout'].includes(b.status)) {
      agg.durations.push(ended - started);
    }
  }
  return out.map((agg) => {
    const d = agg.durations.sort((x, y) => x - y), w = agg.waits.sort((x, y) => x - y);
    const decided = agg.success + agg.failed;
    return {start: agg.start, builds: agg.builds, success: agg.success, failed: agg.failed,
      cancelled: agg.cancelled, success_rate: decided ? agg.success / decided : null,
      duration_p50: percentile(d, 0.5), duration_max: d.length ? d[d.length - 1] : null,
      wait_p50: percentile(w, 0.5), wait_max: w.length ? w[w.length - 1] : null};
  });
}
