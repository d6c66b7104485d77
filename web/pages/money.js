// Money: every payment (refunds shown on the payment they undo), totals per currency, the
// plans on sale, promo codes with their uses (and a form for a new one), referral codes.

import { get, post, query } from '../api.js';
import { h, replace, table, date, number, notice } from '../ui.js';

export const title = 'Money';
const money = (amount, currency) => `${(amount / 100).toFixed(2)} ${String(currency).toUpperCase()}`;

export async function render(main) {
  const totals = h('div', { class: 'cards', id: 'money-totals' });
  const payments = h('div', { id: 'payments' });
  const plans = h('div', { id: 'plans-on-sale' });
  const promos = h('div', { id: 'promo-codes' });
  const referrals = h('div', { id: 'referral-codes' });
  const promoForm = h('form', { class: 'inline', id: 'promo-form', onsubmit: async (e) => {
    e.preventDefault();
    const body = { days: Number(promoForm.days.value), max_uses: Number(promoForm.max_uses.value) };
    if (promoForm.code.value.trim()) body.code = promoForm.code.value.trim();
    try {
      const made = await post('/api/v1/admin/promo-codes', body);
      notice(`Promo code ${made.code} made`);
      promoForm.reset();
      await loadPromos();
    } catch (err) { notice(err.message, 'error'); }
  } },
  h('input', { name: 'code', 'aria-label': 'Promo code', placeholder: 'code (blank: generated)',
    pattern: '[A-Za-z0-9 \\-]{4,40}', title: '4 to 32 letters and digits, any case; spaces and dashes are dropped' }),
  h('input', { name: 'days', type: 'number', min: 1, value: 30, required: true, title: 'Pro days' }),
  h('input', { name: 'max_uses', type: 'number', min: 1, value: 100, required: true, title: 'uses allowed' }),
  h('button', { type: 'submit' }, 'New promo code'));

  replace(main, h('h1', {}, title), totals, h('h2', {}, 'Payments'), payments, h('h2', {}, 'Plans on sale'), plans,
    h('h2', {}, 'Promo codes'), promoForm, promos, h('h2', {}, 'Referral codes'), referrals);

  const paymentCursors = [null];
  async function loadPayments() {
    const page = await get(query('/api/v1/admin/payments', { limit: 50, after: paymentCursors[paymentCursors.length - 1] }));
    replace(totals, Object.entries(page.totals).map(([currency, t]) => h('div', { class: 'card' },
      h('div', { class: 'label' }, `All time, ${currency.toUpperCase()}`),
      h('div', { class: 'value' }, money(t.amount - t.refunded, currency)),
      h('div', { class: 'detail' }, `${number(t.payments)} payments · ${money(t.refunded, currency)} refunded`))));
    replace(payments,
      table([
        ['When', (p) => date(p.created_ms / 1000)], ['User', (p) => h('a', { href: `#/users/${p.user_id}` }, `#${p.user_id}`)],
        ['Plan', (p) => p.plan], ['Amount', (p) => money(p.amount, p.currency)],
        ['Refunded', (p) => (p.refunded ? money(p.refunded, p.currency) : '–')], ['Pro days', (p) => number(p.days - p.days_revoked)],
        ['Status', (p) => h('span', { class: `status ${p.status}` }, p.status)], ['Id', (p) => h('code', {}, p.id)],
      ], page.payments, 'No payment yet.'),
      h('div', { class: 'pager' },
        h('button', { type: 'button', disabled: paymentCursors.length < 2, onclick: () => { paymentCursors.pop(); loadPayments(); } }, '← Previous'),
        h('button', { type: 'button', disabled: !page.next, onclick: () => { paymentCursors.push(page.next); loadPayments(); } }, 'Next →')));
  }
  async function loadPromos() {
    const { codes } = await get('/api/v1/admin/promo-codes');
    replace(promos, table([
      ['Code', (c) => h('code', {}, c.code)], ['Pro days', (c) => number(c.days)], ['Uses', (c) => `${number(c.uses)} / ${number(c.max_uses)}`],
      ['Expires', (c) => date(c.expires_at)], ['Made', (c) => date(c.created_at)],
    ], codes, 'No promo code.'));
  }
  const referralCursors = [null];
  async function loadReferrals() {
    const page = await get(query('/api/v1/admin/referral-codes', { limit: 50, after: referralCursors[referralCursors.length - 1] }));
    replace(referrals, table([
      ['Code', (c) => h('code', {}, c.code)], ['Owner', (c) => h('a', { href: `#/users/${c.owner}` }, `#${c.owner}`)], ['Uses', (c) => number(c.uses)],
    ], page.codes, 'No referral code yet.'),
    h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: referralCursors.length < 2, onclick: () => { referralCursors.pop(); loadReferrals(); } }, '← Previous'),
      h('button', { type: 'button', disabled: !page.next, onclick: () => { referralCursors.push(page.next); loadReferrals(); } }, 'Next →')));
  }
  async function loadPlans() {
    const { plans: onSale } = await get('/api/v1/pro/plans');
    replace(plans, table([['Id', (p) => h('code', {}, p.id)], ['Name', (p) => p.name], ['Price', (p) => money(p.price, p.currency)], ['Pro days', (p) => number(p.days)]],
      onSale, 'No plan configured.'));
  }
  await Promise.all([loadPayments(), loadPromos(), loadReferrals(), loadPlans()]);
}
