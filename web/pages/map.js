// Every place the fleet has gateways, on an equirectangular world map (Natural Earth's land,
// assets/admin/world-land.svg): one dot per city, sized by its proxy count and coloured by
// fullness; the table below gives the same places.

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
  replace(main, h('h1', {}, title), map, list);

  async function load() {
    const { places } = await get('/api/v1/admin/map');
    const dots = places.filter((p) => p.lat !== null && p.lon !== null).map((p) => {
      const where = [p.city, p.country].filter(Boolean).join(', ') || 'unknown';
      const dot = svg('circle', { cx: x(p.lon).toFixed(1), cy: y(p.lat).toFixed(1), r: (3 + Math.sqrt(p.proxies) * 2).toFixed(1), class: `dot ${level(p.fullness)}` },
        svg('title', {}, document.createTextNode(`${where}: ${p.proxies} proxies, ${p.clients} / ${p.capacity} clients`)));
      return dot;
    });
    replace(map, svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'world', role: 'img', 'aria-label': 'gateways by location' },
      svg('rect', { x: 0, y: 0, width: W, height: H, class: 'sea' }),
      svg('image', { href: 'world-land.svg', x: 0, y: 0, width: W, height: H }), grid(), ...dots));
    replace(list, table([
      ['Place', (p) => [p.city, p.country].filter(Boolean).join(', ') || 'unknown'],
      ['Proxies', (p) => number(p.proxies)],
      ['Clients', (p) => fullness(p.clients, p.capacity)],
      ['Position', (p) => (p.lat === null ? '–' : `${p.lat.toFixed(1)}, ${p.lon.toFixed(1)}`)],
    ], places, 'No proxy registered.'));
  }
  await load();
  return load;
}
