"""Writes assets/admin/world-land.svg, the land outline the admin panel's map draws under the
gateways, from Natural Earth's 1:110m land as packaged in world-atlas (ISC, Mike Bostock; the
data is public domain): an equirectangular projection in a 720 x 360 box, x = lon + 180 and
y = 90 - lat, at 2x. Run once when changing it:
    npm pack world-atlas@2 && tar xzf world-atlas-2.0.2.tgz
    python3 scripts/world_map.py package/land-110m.json > assets/admin/world-land.svg"""
import json
import sys

topology = json.load(open(sys.argv[1]))
scale, translate = topology["transform"]["scale"], topology["transform"]["translate"]


def decode(arc):
    """Delta-encoded, quantized positions -> (lon, lat)."""
    x = y = 0
    points = []
    for dx, dy in arc:
        x, y = x + dx, y + dy
        points.append((x * scale[0] + translate[0], y * scale[1] + translate[1]))
    return points


arcs = [decode(a) for a in topology["arcs"]]


def ring(indices):
    points = []
    for i in indices:
        arc = arcs[i] if i >= 0 else arcs[~i][::-1]
        points.extend(arc if not points else arc[1:])
    return points


def polygons(geometry):
    if geometry["type"] == "Polygon":
        yield geometry["arcs"]
    elif geometry["type"] == "MultiPolygon":
        yield from geometry["arcs"]
    elif geometry["type"] == "GeometryCollection":
        for child in geometry["geometries"]:
            yield from polygons(child)


paths = []
for polygon in polygons(topology["objects"]["land"]):
    for indices in polygon:
        # A ring that crosses the antimeridian is cut there into pieces, each closed on itself
        # (else a line would run across the whole map).
        pieces, previous = [[]], None
        for lon, lat in ring(indices):
            if previous is not None and abs(lon - previous) > 180:
                pieces.append([])
            pieces[-1].append(((lon + 180) * 2, (90 - lat) * 2))
            previous = lon
        for pts in pieces:
            paths.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in pts) + "Z")

print('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 720 360">'
      '<!-- Natural Earth 1:110m land (public domain), via world-atlas (ISC) -->'
      f'<path fill="#d9e2ee" stroke="#c3cfdf" stroke-width="0.5" d="{"".join(paths)}"/></svg>')
