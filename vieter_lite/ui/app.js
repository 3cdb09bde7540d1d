// The dashboard: hash routes (#/, #/builds/42, #/repos, #/history, #/agents), sign-in,
// and the first screen. Every view reads /api/v2 only; every failure shows its detail.
import {ApiError, anonymousReader, loadInfo, session, signIn, signOut} from './api.js';
import {errorBox, fill, h} from './dom.js';
import {agentsView} from './agents.js';
import {buildView, buildsView, scrollToLine} from './build.js';
import {historyView} from './history.js';
import {overviewView} from './overview.js';
import {packagesView, reposView} from './repos.js';

const main = document.getElementById('main');
let current = null; // {controller} of the view on screen

const ROUTES = [
  [/^\/$/, overviewView],
  [/^\/builds$/, buildsView],
  [/^\/builds\/(\d+)(?:\/L(\d+))?$/, buildView],
  [/^\/repos$/, reposView],
  [/^\/repos\/([^/]+)\/([^/]+)$/, packagesView],
  [/^\/history$/, historyView],
  [/^\/history\/(\d+)$/, historyView],
  [/^\/agents$/, agentsView],
];

function signedIn() {
  return Boolean(session.token) || session.info.public_dashboard;
}

function renderWho() {
  const who = document.getElementById('who');
  if (session.token) {
    fill(who, h('span', {class: 'muted', id: 'whoname'}, session.name),
      h('button', {type: 'button', class: 'small', id: 'signout', onclick: () => {
        signOut();
        location.hash = '#/signin';
      }}, 'Sign out'));
  } else {
    fill(who, h('a', {href: '#/signin', id: 'signin-link'}, 'Sign in'));
  }
}

function signInView(container, message, wanted = '/') {
  const input = h('input', {type: 'password', id: 'token', name: 'token', required: true,
    autocomplete: 'current-password', spellcheck: 'false'});
  const status = h('div', {id: 'signin-status'}, message ? errorBox({detail: message}) : null);
  const form = h('form', {id: 'signin', class: 'card signin'},
    h('h2', {}, 'Sign in'),
    h('p', {class: 'muted'}, 'An API token of this server (kept in this tab only, sent as a ' +
      'bearer header).'),
    h('input', {type: 'text', name: 'username', autocomplete: 'username', value: 'vieter-lite',
      hidden: true, readonly: true}),
    h('label', {for: 'token'}, 'API token'), input,
    h('button', {type: 'submit', id: 'signin-button'}, 'Sign in'), status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(status, h('p', {class: 'muted'}, 'Checking…'));
    try {
      await signIn(input.value.trim());
      renderWho();
      const target = `#${wanted}`;
      if (location.hash === target) route();
      else location.hash = target; // the page asked for before signing in
    } catch (err) {
      fill(status, errorBox(err.status === 401
        ? {detail: `This token is not accepted: ${err.detail}`} : err));
    }
  });
  fill(container, form);
  input.focus();
}

async function route() {
  const path = (location.hash || '#/').slice(1) || '/';
  // a line's anchor on the build page on screen: only scroll to it
  const line = /^(\/builds\/\d+)\/L(\d+)$/.exec(path);
  if (line && current && current.base === line[1]) {
    scrollToLine(line[2]);
    return;
  }
  if (current) current.controller.abort();
  const controller = new AbortController();
  current = {controller, base: path.replace(/\/L\d+$/, '')};
  for (const link of document.querySelectorAll('#nav a')) {
    const target = link.getAttribute('href').slice(1);
    link.classList.toggle('active', target === '/' ? path === '/' : path.startsWith(target));
  }
  renderWho();
  if (path === '/signin' || !signedIn()) {
    signInView(main, null, path === '/signin' ? '/' : path);
    return;
  }
  const match = ROUTES.map(([re, view]) => [path.match(re), view]).find(([m]) => m);
  if (!match) {
    fill(main, errorBox({detail: `There is no page '${path}'.`}),
      h('p', {}, h('a', {href: '#/'}, 'To the overview')));
    return;
  }
  const [m, view] = match;
  try {
    await view(main, m.slice(1), controller.signal);
  } catch (err) {
    if (controller.signal.aborted || (err && err.name === 'AbortError')) return;
    if (err instanceof ApiError && err.status === 401) {
      signOut();
      signInView(main, err.detail, path);
      renderWho();
      return;
    }
    fill(main, errorBox(err));
  }
}

async function start() {
  await loadInfo();
  if (session.token) {
    try {
      await signIn(session.token);
    } catch (err) {
      fill(main, errorBox(err));
    }
  }
  if (!session.token && session.info.public_dashboard) anonymousReader();
  window.addEventListener('hashchange', route);
  document.documentElement.dataset.started = 'yes'; // signed in (or not) for good
  await route();
}

window.addEventListener('unhandledrejection', (event) => {
  if (event.reason && event.reason.name === 'AbortError') event.preventDefault();
});

start().catch((err) => fill(main, errorBox(err)));
