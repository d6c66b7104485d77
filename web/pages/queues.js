// The durable task queue and the mail outbox: counts by kind and state, dead letters with a
// retry button, the latest mails with their delivery state.

import { get, post } from '../api.js';
import { h, replace, table, dateMs, number, notice } from '../ui.js';

export const title = 'Queues';

export async function render(main) {
  const counts = h('div', { id: 'queue-counts' });
  const dead = h('div', { id: 'dead-letters' });
  const outbox = h('div', { id: 'outbox' });
  replace(main, h('h1', {}, title), counts, h('h2', {}, 'Dead letters'), dead, h('h2', {}, 'Mail outbox'), outbox);

  const retry = async (task) => {
    try {
      await post(`/api/v1/admin/queue/tasks/${task.id}/retry`);
      notice(`Task ${task.id} queued again`);
      await load();
    } catch (e) { notice(e.message, 'error'); }
  };

  async function load() {
    const [c, d, m] = await Promise.all([
      get('/api/v1/admin/queue'), get('/api/v1/admin/queue/dead?limit=100'), get('/api/v1/admin/mail/outbox?limit=50'),
    ]);
    const states = ['ready', 'leased', 'done', 'dead'];
    replace(counts,
      h('div', { class: 'cards' }, states.map((s) => h('div', { class: 'card' }, h('div', { class: 'label' }, s), h('div', { class: 'value' }, number(c[s]))))),
      table([['Kind', ([kind]) => h('code', {}, kind)], ...states.map((s) => [s, ([, byState]) => number(byState[s] || 0)])],
        Object.entries(c.by_kind), 'No task yet.'));
    replace(dead, table([
      ['Id', (t) => String(t.id)], ['Kind', (t) => h('code', {}, t.kind)], ['Tries', (t) => `${t.attempts} / ${t.max_attempts}`],
      ['Last error', (t) => t.last_error || '–'], ['Updated', (t) => dateMs(t.updated_ms)],
      ['', (t) => h('button', { type: 'button', onclick: () => retry(t) }, 'Retry')],
    ], d.tasks, 'No dead letter.'));
    replace(outbox, table([
      ['To', (x) => x.to], ['Template', (x) => x.template], ['Queued', (x) => dateMs(x.created_ms)],
      ['Sent', (x) => (x.sent_ms ? dateMs(x.sent_ms) : h('span', { class: 'status pending' }, 'pending'))],
      ['Tries', (x) => number(x.attempts)], ['Last error', (x) => x.last_error || '–'],
    ], m.mails, 'No mail yet.'));
  }
  await load();
  return load;
}
