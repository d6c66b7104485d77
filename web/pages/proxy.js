// One proxy: what it is now (address, location, transport, load against capacity, heartbeat),
// its load history (clients, cpu, bandwidth) on time axes, the actions with the real outcome
// of the work each queued (from the task queue), the users assigned to it, its registry events,
// and everyone ever given it (its exposure, for when it is blocked). A proxy that has left the
// registry keeps its page: its history, tasks and exposure outlive it.

import { get, getTagged, post, query, ApiError } from '../api.js';
import { h, replace, table, fullness, agoTime, refreshAgo, date, dateMs, number, timeChart, notice } from '../ui.js';
import { actionButtons } from '../proxy_actions.js';

export const title = 'Proxy';

const userLink = (id) => h('a', { href: `#/users/${id}` }, `#${id}`);
const hours = (s) => (s < 3600 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
// Bandwidth is reported in bits per second.
const bits = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(1)} Gbit/s` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} Mbit/s` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kbit/s` : `${number(n)} bit/s`);

/// A section with a pager over cursor pages: `fetchPage(cursor)` -> { rows, next }.
function paged(box, columns, fetchPage, empty, intro = () => null) {
  const cursors = [null];
  const load = async () => {
    const page = await fetchPage(cursors[cursors.length - 1]);
    replace(box, intro(page), table(columns, page.rows, empty),
      h('div', { class: 'pager' },
        h('button', { type: 'button', disabled: cursors.length < 2, onclick: () => { cursors.pop(); load(); } }, '← Previous'),
        h('button', { type: 'button', disabled: !page.next, onclick: () => { cursors.push(page.next); load(); } }, 'Next →')));
  };
  return load;
}

export async function render(main, { name }) {
  const path = (end = '') => `/api/v1/admin/proxies/${encodeURIComponent(name)}${end}`;
  const facts = h('div', { id: 'proxy-facts' });
  const load = h('div', { class: 'charts', id: 'proxy-load' });
  const tasks = h('div', { id: 'proxy-tasks' });
  const users = h('div', { id: 'proxy-users' });
  const events = h('div', { id: 'proxy-events' });
  const exposure = h('div', { id: 'proxy-exposure' });
  replace(main,
    h('p', {}, h('a', { href: '#/proxies' }, '← Proxies')),
    h('h1', {}, 'Proxy ', h('span', { class: 'name' }, name)),
    facts,
    h('h2', {}, 'Load'), load,
    h('h2', {}, 'Work queued for it, and its outcome'), tasks,
    h('h2', {}, 'Users assigned'), users,
    h('h2', {}, 'Registry events'), events,
    h('h2', {}, 'Everyone ever given it'), exposure);

  let shownFacts = null;
  async function drawFacts() {
    let p;
    try {
      p = await get(path());
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      if (shownFacts !== 'gone') {
        replace(facts, h('p', { class: 'empty', id: 'proxy-gone' }, 'Not in the registry now: it left (see its events below) or never registered. Its history, tasks and exposure stay.'));
        shownFacts = 'gone';
      }
      return;
    }
    const signature = JSON.stringify({ ...p, last_seen: 0, expires_at: 0 });
    if (signature === shownFacts) { refreshAgo(facts); return; }
    shownFacts = signature;
    const transport = [p.protocol, p.sni && `sni ${p.sni}`, p.front && `front ${p.front}`, p.cert_sha256 && `pinned cert ${p.cert_sha256.slice(0, 16)}…`]
      .filter(Boolean).join(' · ') || '–';
    replace(facts,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Role'), h('dd', { id: 'proxy-role' }, h('span', { class: `status ${p.role}` }, p.role)),
        h('dt', {}, 'Address'), h('dd', {}, `${p.ip}:${p.port}`),
        h('dt', {}, 'Location'), h('dd', {}, [p.city, p.country].filter(Boolean).join(', ') || '–'),
        h('dt', {}, 'Transport'), h('dd', {}, transport),
        h('dt', {}, 'Clients'), h('dd', {}, fullness(p.clients, p.capacity)),
        h('dt', {}, 'CPU'), h('dd', {}, p.cpu === null ? '–' : `${p.cpu}%`),
        h('dt', {}, 'Bandwidth'), h('dd', {}, p.bandwidth === null ? '–' : bits(p.bandwidth)),
        h('dt', {}, 'Registered'), h('dd', {}, date(p.registered_at)),
        h('dt', {}, 'Last heartbeat'), h('dd', {}, agoTime(p.last_seen)),
        h('dt', {}, 'Expires without one'), h('dd', {}, date(p.expires_at))),
      h('div', { class: 'actions', id: 'proxy-actions' }, actionButtons(p, refreshAll)));
  }

  async function drawLoad() {
    let samples = [];
    try {
      samples = (await get(path('/load'))).samples;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    const series = (field) => samples.filter((s) => s[field] !== null && s[field] !== undefined).map((s) => [s.at, s[field]]);
    replace(load,
      timeChart(series('clients'), { label: 'Clients' }),
      timeChart(series('cpu'), { label: 'CPU (%)', format: (v) => String(Math.round(v * 10) / 10) }),
      timeChart(series('bandwidth'), { label: 'Bandwidth', format: bits }));
  }

  let shownTasks = null;
  async function drawTasks() {
    const { data, etag } = await getTagged(path('/tasks?limit=20'));
    const signature = etag || JSON.stringify(data);
    if (signature === shownTasks) return;
    shownTasks = signature;
    const retry = (t) => (t.state === 'dead'
      ? h('button', { type: 'button', class: 'retry', onclick: async () => {
        try { await post(`/api/v1/admin/queue/tasks/${t.id}/retry`); notice(`Task ${t.id} queued again`); await drawTasks(); } catch (e) { notice(e.message, 'error'); }
      } }, 'Retry')
      : '');
    replace(tasks, table([
      ['Task', (t) => h('code', {}, t.kind)],
      ['Queued', (t) => dateMs(t.created_ms)],
      ['Outcome', (t) => h('span', { class: `status task-${t.state}` }, t.state === 'ready' && t.attempts ? 'retrying' : t.state)],
      ['Tries', (t) => `${t.attempts} of ${t.max_attempts}`],
      ['Last error', (t) => t.last_error || '–'],
      ['', retry],
    ], data.tasks, 'Nothing queued for it (finished tasks are kept for the queue\'s retention).'));
  }

  const drawUsers = paged(users, [
    ['User', (u) => [userLink(u.id), ' ', u.email]],
    ['Status', (u) => h('span', { class: `status ${u.status}` }, u.status)],
    ['Pro', (u) => (u.pro ? 'yes' : '–')],
    ['Joined', (u) => date(u.joined_at)],
  ], async (after) => {
    const page = await get(query(path('/users'), { limit: 50, after }));
    return { rows: page.users, next: page.next_after, total: page.total };
  }, 'Nobody is assigned to it.', (page) => h('p', { id: 'proxy-users-total' }, `${number(page.total)} assigned`));

  const drawEvents = paged(events, [
    ['When', (e) => date(e.at)],
    ['Event', (e) => (e.country ? `${e.kind} in ${e.country}` : e.kind)],
    ['Address', (e) => `${e.ip}:${e.port}`],
  ], async (before) => {
    const page = await get(query('/api/v1/admin/registry/events', { limit: 50, name, before }));
    return { rows: page.events, next: page.next_before };
  }, 'No event recorded.');

  const drawExposure = paged(exposure, [
    ['User', (u) => [userLink(u.user), ' ', u.email, ' ', h('span', { class: `status ${u.status}` }, u.status)]],
    ['Held', (u) => u.periods.map((p) => h('div', {}, `${date(p.from)} → ${p.until ? date(p.until) : 'now'} (${hours(p.seconds)})`))],
    ['Invited by', (u) => (u.inviters.length ? u.inviters.map((id) => [userLink(id), ' ']) : 'nobody')],
  ], async (after) => {
    const page = await get(query(path('/exposure'), { limit: 100, after }));
    return { rows: page.users, next: page.next_after };
  }, 'Nobody was ever given this proxy.');

  async function refreshAll() {
    await Promise.all([drawFacts(), drawTasks(), drawUsers(), drawEvents()]);
  }
  await Promise.all([drawFacts(), drawLoad(), drawTasks(), drawUsers(), drawEvents(), drawExposure()]);
  let ticks = 0;
  // Live: the facts and the tasks every tick (both drawn only when changed), the load every 30 s.
  return async () => {
    await Promise.all([drawFacts(), drawTasks()]);
    if (++ticks % 15 === 0) await drawLoad();
  };
}
