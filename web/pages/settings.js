// Read-only: the effective configuration (secrets masked by the server), the VCL the edge
// runs, and the public key clients verify configs with.

import { get } from '../api.js';
import { h, replace, table } from '../ui.js';

export const title = 'Settings';

const show = (value) => (value === null ? h('span', { class: 'muted' }, 'unset') : typeof value === 'object' ? JSON.stringify(value) : String(value));

export async function render(main) {
  const [{ settings }, vcl, key] = await Promise.all([
    get('/api/v1/admin/settings'),
    fetch('/api/v1/admin/edge/varnish.vcl', { credentials: 'same-origin' }).then((r) => (r.ok ? r.text() : `(${r.status})`)),
    get('/api/v1/config/pubkey'),
  ]);
  replace(main, h('h1', {}, title),
    h('p', { class: 'muted' }, 'Set in the config file or the environment (PROXYFLEET_*); a restart applies changes. Secrets are never shown.'),
    h('div', { id: 'settings' }, table([['Setting', ([k]) => h('code', {}, k)], ['Value', ([, v]) => show(v)]], Object.entries(settings))),
    h('h2', {}, 'Config signing public key'),
    h('pre', { id: 'pubkey' }, typeof key === 'string' ? key : JSON.stringify(key, null, 2)),
    h('h2', {}, 'Edge VCL preview'),
    h('pre', { id: 'vcl' }, vcl));
}
