// The one way the dashboard talks to the server: /api/v2 with the signed-in token as a
// bearer header (kept in sessionStorage; never in a URL or a cookie).
const TOKEN_KEY = 'vieter-lite-token';
// what a token is assumed to hold when the server has no /api/v2/whoami to ask
const ASSUMED_SCOPES = ['builds:read', 'builds:write', 'targets:read', 'repos:read'];

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  info: {public_dashboard: false, signing: null, public_url: null, version: ''},
  contract: false, // the server has /api/v2/info, whoami, stats and since_last_success
  name: '',
  scopes: [],
  admin: false,
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

// a link from a pagination object (absolute, maybe naming another host) as a local path
export function localPath(href) {
  const url = new URL(href, location.href);
  return url.pathname + url.search;
}

async function detailOf(resp) {
  try {
    const body = await resp.json();
    if (body && Array.isArray(body.errors) && body.errors[0] && body.errors[0].detail) {
      return body.errors[0].detail;
    }
    if (body && body.message) return body.message;
  } catch {
    // not JSON: the status line says enough
  }
  return `${resp.status} ${resp.statusText || 'error'}`;
}

export async function request(path, options = {}) {
  const headers = {Accept: 'application/json', ...(options.headers || {})};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let resp;
  try {
    resp = await fetch(path, {method: options.method || 'GET', headers, body: options.body,
      signal: options.signal, cache: 'no-store', credentials: 'omit'});
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, `The server could not be reached (${err.message}).`);
  }
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  return resp;
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

export async function post(path, body) {
  const resp = await request(path, {method: 'POST', body: body === undefined ? undefined
    : JSON.stringify(body), headers: {'Content-Type': 'application/json'}});
  return resp.status === 204 ? null : resp.json();
}

// every resource of a CF list, following pagination.next (at most `limit` pages)
export async function allPages(path, limit = 20) {
  const out = [];
  let next = path;
  for (let i = 0; next && i < limit; i += 1) {
    const page = await getJSON(next);
    out.push(...page.resources);
    next = page.pagination && page.pagination.next ? localPath(page.pagination.next.href) : null;
  }
  return out;
}

export function can(scope) {
  return session.admin || session.scopes.includes('admin') || session.scopes.includes(scope);
}

// /api/v2/info first: it is public, so an anonymous visitor causes no 401. A server
// without it is treated as one without public_dashboard.
export async function loadInfo() {
  const resp = await fetch('/api/v2/info', {headers: {Accept: 'application/json'},
    cache: 'no-store', credentials: 'omit'}).catch(() => null);
  if (resp && resp.ok) {
    session.info = await resp.json();
    session.contract = true;
  } else {
    session.contract = false;
  }
}

// check a token and learn what it may do
export async function signIn(token) {
  session.token = token;
  try {
    if (session.contract) {
      const me = await getJSON('/api/v2/whoami');
      session.name = me.name || '';
      session.scopes = me.scopes || [];
      session.admin = Boolean(me.admin);
    } else {
      await getJSON('/api/v2/builds?per_page=1');
      session.name = 'signed in';
      session.scopes = ASSUMED_SCOPES;
      session.admin = false;
    }
  } catch (err) {
    signOut();
    throw err;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function signOut() {
  session.token = '';
  session.name = '';
  session.scopes = [];
  session.admin = false;
  sessionStorage.removeItem(TOKEN_KEY);
}

export function anonymousReader() {
  session.name = '';
  session.scopes = ['builds:read', 'targets:read', 'repos:read'];
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); });
});

function parseEvent(block) {
  const event = {event: 'message', data: null, id: null};
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') data.push(value);
    else if (name === 'id') event.id = value;
    else if (name === 'event') event.event = value;
  }
  if (data.length) event.data = data.join('\n');
  return event;
}

// Follow a build's log from byte `offset` over the server-sent event stream, read with
// fetch (EventSource cannot send the bearer header); a dropped stream reconnects with
// Last-Event-ID, so nothing is missed or repeated. Resolves true at `event: done`,
// false when aborted.
export async function followLog(buildId, offset, onText, signal) {
  let last = offset;
  let wait = 500;
  while (!signal.aborted) {
    try {
      const resp = await request(`/api/v2/builds/${buildId}/log/content`, {signal,
        headers: {Accept: 'text/event-stream', 'Last-Event-ID': String(last)}});
      wait = 500;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event.event === 'done') return true;
          if (event.id !== null && /^[0-9]+$/.test(event.id)) last = Number(event.id);
          if (event.data !== null) onText(event.data, last);
        }
      }
    } catch (err) {
      if (signal.aborted) return false;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
    }
    await sleep(wait, signal);
    wait = Math.min(wait * 2, 10000);
  }
  return false;
}
