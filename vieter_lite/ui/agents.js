// Agents: which are online, their archs and labels, and what each builds.
import {getJSON} from './api.js';
import {buildLink, empty, fill, h, statusChip, table, timeEl} from './dom.js';

export async function agentsView(main, _params, signal) {
  const agents = (await getJSON('/api/v2/agents?per_page=200', {signal})).resources;
  fill(main, h('h1', {}, 'Agents'), h('section', {class: 'card'},
    agents.length ? table(['Agent', 'Status', 'Archs', 'Labels', 'Building', 'Last seen'],
      agents.map((a) => h('tr', {'data-agent': a.name},
        h('td', {}, a.name), h('td', {}, statusChip(a.status)), h('td', {}, a.archs.join(', ')),
        h('td', {class: 'wrap'}, Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—'),
        h('td', {}, a.builds.length ? a.builds.map((b, i) => [i ? ', ' : '', buildLink(b.id)]) : 'idle'),
        h('td', {}, timeEl(a.last_seen_at)))), 'agents')
      : empty('No agent has registered yet.')));
}
