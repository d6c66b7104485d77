// Every place the fleet has gateways, on an equirectangular world map (Natural Earth's land,
// assets/admin/world-land.svg): one dot per city, sized by its proxy count and coloured by
// fullness, ringed when proxies there are blocked in some country (the block layer); the
// table below gives the same places.

import { get } from '../api.js';
import { h, replace, svg, table, number, fullness } from '../ui.js';

export const title = 'Map';
const W = 720;
const H = 360;
const x = (lon) => ((lon + 180) / 360) * W;
const y = (lat) => ((90 - lat) / 180) * H;
const level = (f) => (f > 0.9 ? 'hot' : f > 0.7 ? 'warm' : 'ok');

function grid() {
  const lines = [];
  for (let lon = -180; lon <= 180; lon += 30) lines.push(svg('line', { x1: x(lon), y1: 0, x2: x(lon), y2: H, class: lon === 0 ? 'axis' : '' }));
  for (let lat = -60; lat <= 60; lat += 30) lines.push(svg('line', { x1: 0, y1: y(lat), x2: W, y2: y(lat), class: lat === 0 ? 'axis' : '' }));
  return svg('g', { class: 'grid' }, ...lines);
}

export async function render(main) {
  const map = h('div', { id: 'world' });
  const list = h('div', { id: 'places' });
  const overrides = h('div', { id: 'overrides' });
  replace(main, h('h1', {}, title), map, list,
    h('h2', {}, 'Cities chosen by hand'),
    h('p', { class: 'muted' }, 'Clients that picked a gateway city themselves in /json (type=refresh): many there means the recommendation does not serve them. Counted by the primary.'),
    overrides);

  async function load() {
    const { places } = await get('/api/v1/admin/map');
    const blockedText = (p) => Object.entries(p.blocked || {}).map(([c, n]) => `${n} in ${c}`).join(', ');
    const dots = places.filter((p) => p.lat !== null && p.lon !== null).flatMap((p) => {
      const where = [p.city, p.country].filter(Boolean).join(', ') || 'unknown';
      const r = 3 + Math.sqrt(p.proxies) * 2;
      const blocked = blockedText(p);
      const dot = svg('circle', { cx: x(p.lon).toFixed(1), cy: y(p.lat).toFixed(1), r: r.toFixed(1), class: `dot ${level(p.fullness)}` },
        svg('title', {}, document.createTextNode(`${where}: ${p.proxies} proxies, ${p.clients} / ${p.capacity} clients${blocked ? `; blocked: ${blocked}` : ''}`)));
      // The block layer: a ring around places with proxies blocked somewhere.
      const ring = blocked
        ? [svg('circle', { cx: x(p.lon).toFixed(1), cy: y(p.lat).toFixed(1), r: (r + 3).toFixed(1), class: 'blocked-ring' })]
        : [];
      return [dot, ...ring];
    });
    const legend = h('p', { id: 'map-legend', class: 'legend' },
      h('span', { class: 'dot-key ok' }), ' room ', h('span', { class: 'dot-key warm' }), ' over 70% full ',
      h('span', { class: 'dot-key hot' }), ' over 90% full ', h('span', { class: 'ring-key' }), ' proxies blocked in some country');
    replace(map, svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'world', role: 'img', 'aria-label': 'gateways by location' },
      svg('rect', { x: 0, y: 0, width: W, height: H, class: 'sea' }),
      svg('image', { href: 'world-land.svg', x: 0, y: 0, width: W, height: H }), grid(), ...dots), legend);
    replace(list, table([
      ['Place', (p) => [p.city, p.country].filter(Boolean).join(', ') || 'unknown'],
      ['Proxies', (p) => number(p.proxies)],
      ['Clients', (p) => fullness(p.clients, p.capacity)],
      ['Blocked', (p) => blockedText(p) || '–'],
      ['Position', (p) => (p.lat === null ? '–' : `${p.lat.toFixed(1)}, ${p.lon.toFixed(1)}`)],
    ], places, 'No proxy registered.'));
    const counted = await get('/api/v1/admin/gateways/overrides');
    const lastDays = (city, n) => {
      const since = new Date(Date.now() - n * 86400000).toISOString().slice(0, 10);
      return (counted.by_day[city] || []).filter((d) => d.day > since).reduce((sum, d) => sum + d.count, 0);
    };
    replace(overrides, table([
      ['City', ([city]) => city],
      ['Last 7 days', ([city]) => number(lastDays(city, 7))],
      ['Last 90 days', ([city]) => number(lastDays(city, 90))],
      ['In all', ([, total]) => number(total)],
    ], Object.entries(counted.overrides).sort((a, b) => b[1] - a[1]), 'No client chose a city by hand.'));
  }
  await load();
  return load;
}
