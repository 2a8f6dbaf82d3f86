// The bench's chart: horizontal bar panels (one per measure) in a standalone SVG, with one
// colour per peer, so docs/performance.md shows the run's figures without a plotting library.

const COLOURS = {
  kcpwatch: '#1f77b4',
  'kcpwatch (Go load)': '#6baed6',
  'kcp-go': '#ff7f0e',
  'node-kcp': '#2ca02c',
  'dgram (no KCP)': '#7f7f7f',
};
const fallback = ['#9467bd', '#8c564b', '#e377c2', '#bcbd22', '#17becf'];

const escape = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

function format(value) {
  if (value >= 10_000) return `${Math.round(value / 1000)}k`;
  if (value >= 100) return String(Math.round(value));
  return value.toFixed(value >= 10 ? 1 : 2);
}

/**
 * panels: [{ title, unit, bars: [{ group, peer, value }] }] → SVG text. Bars of one group sit
 * together; a missing value (peer unavailable) is left out, not drawn as zero.
 */
export function renderChart(panels, { title = 'kcpwatch npm run bench' } = {}) {
  const width = 960;
  const labelWidth = 300;
  const barHeight = 14;
  const gap = 10;
  const peers = [...new Set(panels.flatMap((p) => p.bars.map((b) => b.peer)))];
  const colour = (peer) => COLOURS[peer] ?? fallback[peers.indexOf(peer) % fallback.length];
  const parts = [];
  let y = 40;
  parts.push(`<text x="10" y="24" font-size="16" font-weight="bold">${escape(title)}</text>`);
  // Legend.
  let lx = 10;
  y += 4;
  for (const peer of peers) {
    parts.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${colour(peer)}"/>`);
    parts.push(`<text x="${lx + 16}" y="${y}" font-size="12">${escape(peer)}</text>`);
    lx += 24 + peer.length * 7;
  }
  y += 20;
  for (const panel of panels) {
    const bars = panel.bars.filter((b) => Number.isFinite(b.value));
    if (bars.length === 0) continue;
    const max = Math.max(...bars.map((b) => b.value));
    parts.push(`<text x="10" y="${y + 12}" font-size="14" font-weight="bold">${escape(panel.title)} (${escape(panel.unit)})</text>`);
    y += 22;
    const groups = [...new Set(bars.map((b) => b.group))];
    for (const group of groups) {
      const inGroup = bars.filter((b) => b.group === group);
      const top = y;
      for (const bar of inGroup) {
        const w = max > 0 ? Math.max(1, ((width - labelWidth - 80) * bar.value) / max) : 1;
        parts.push(`<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight - 2}" fill="${colour(bar.peer)}"><title>${escape(`${group} ${bar.peer}: ${bar.value} ${panel.unit}`)}</title></rect>`);
        parts.push(`<text x="${(labelWidth + w + 4).toFixed(1)}" y="${y + barHeight - 4}" font-size="11">${format(bar.value)}</text>`);
        y += barHeight;
      }
      parts.push(`<text x="${labelWidth - 8}" y="${(top + y) / 2 + 4}" font-size="12" text-anchor="end">${escape(group)}</text>`);
      y += gap;
    }
    y += 10;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
