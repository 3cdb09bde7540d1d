// Repos: each repo with its arch-repos, its pacman.conf stanza and set-up command; an
// arch-repo's packages, a page at a time.
import {getJSON, localPath, session} from './api.js';
import {copyBlock, empty, fill, fmtSize, h, section, table, timeEl} from './dom.js';

function base() {
  return (session.info.public_url || location.origin).replace(/\/+$/, '');
}

// the stanza for the address this page was loaded from (or the server's public_url)
export function stanza(repo, signed) {
  return `[${repo}]\n${signed ? 'SigLevel = Required\n' : ''}Server = ${base()}/$repo/$arch\n`;
}

export function setupCommand(repo) {
  return `curl -fsS '${base()}/setup?repo=${encodeURIComponent(repo)}' | sudo sh`;
}

function repoCard(repo) {
  const signed = Boolean(repo.sign_key_fingerprint);
  return h('section', {class: 'card repo', 'data-repo': repo.name},
    h('h2', {}, repo.name),
    h('ul', {class: 'archs'}, repo.archs.map((a) => h('li', {},
      h('a', {href: `#/repos/${encodeURIComponent(repo.name)}/${encodeURIComponent(a.arch)}`},
        `${a.arch}`), ` — ${a.packages} package${a.packages === 1 ? '' : 's'}, db updated `,
      timeEl(a.db_last_modified)))),
    h('h3', {}, 'pacman.conf'), copyBlock(stanza(repo.name, signed), 'Copy stanza'),
    h('h3', {}, 'Set up a pacman machine (as root)'),
    signed ? h('p', {class: 'muted'}, `Packages and databases are signed by ${repo.sign_key_fingerprint}; ` +
      'the script trusts that key and adds the stanza.') : h('p', {class: 'muted'},
      'The script adds the stanza (or run vieter-lite client setup URL REPO).'),
    copyBlock(setupCommand(repo.name), 'Copy command'));
}

export async function reposView(main, _params, signal) {
  const repos = (await getJSON('/api/v2/repos?per_page=200', {signal})).resources;
  fill(main, h('h1', {}, 'Repos'),
    repos.length ? repos.map(repoCard) : section('No repositories', empty(
      'No repositories yet: publishing a package creates one.')));
}

function ownerOf(pkg) {
  if (!pkg.owner) return '—';
  if (pkg.owner.target_id !== null && pkg.owner.target_id !== undefined) {
    return h('a', {href: `#/history/${pkg.owner.target_id}`}, `target ${pkg.owner.target_id}`);
  }
  return pkg.owner.user ? `user ${pkg.owner.user}` : 'api_key';
}

export async function packagesView(main, [repoParam, archParam], signal) {
  const repo = decodeURIComponent(repoParam), arch = decodeURIComponent(archParam);
  const list = h('div', {id: 'packages'});
  const more = h('div', {});
  const load = async (path) => {
    const page = await getJSON(path, {signal});
    if (!page.resources.length && !list.childElementCount) {
      list.append(empty('No packages.'));
      return;
    }
    list.append(table(['Name', 'Version', 'Size', 'Published', 'Owner', 'Signed'],
      page.resources.map((p) => h('tr', {'data-package': p.name},
        h('td', {}, h('a', {href: localPath(p.links.download.href), download: p.filename}, p.name)),
        h('td', {}, p.version), h('td', {class: 'num'}, fmtSize(p.size)),
        h('td', {}, timeEl(p.published_at)), h('td', {}, ownerOf(p)),
        h('td', {}, p.signed ? 'yes' : 'no'))), 'packages'));
    const next = page.pagination.next;
    fill(more, next ? h('button', {type: 'button', id: 'more', onclick: () =>
      load(localPath(next.href)).catch((err) => fill(more, err.detail || String(err)))},
    'More') : null);
  };
  fill(main, h('h1', {}, `${repo} / ${arch}`),
    h('p', {}, h('a', {href: '#/repos'}, '← all repos')),
    h('section', {class: 'card'}, list, more));
  await load(`/api/v2/repos/${encodeURIComponent(repo)}/${encodeURIComponent(arch)}/packages?per_page=100`);
}
