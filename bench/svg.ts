// A horizontal bar chart as a standalone SVG file: one bar per row, its value printed at its end.
// Written by hand so the bench needs no charting dependency.

export interface Bar {
  readonly label: string;
  readonly value: number;
  /** Drawn in the accent colour (the reference row). */
  readonly highlight?: boolean;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function barChart(title: string, subtitle: string, bars: readonly Bar[], unit: string): string {
  const rowH = 26;
  // no text metrics in a hand-written SVG: about 7.2 px per character of 13 px Helvetica/Arial
  const labelW = Math.max(160, Math.ceil(Math.max(...bars.map((b) => b.label.length)) * 7.2) + 16);
  const barMax = 460;
  const valueW = 110;
  const top = 62;
  const width = labelW + barMax + valueW + 20;
  const height = top + bars.length * rowH + 30;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="10" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="10" y="44" font-size="12" fill="#555555">${esc(subtitle)}</text>`);
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const w = Number.isFinite(b.value) ? Math.max(1, (b.value / max) * barMax) : 0;
    out.push(`<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${esc(b.label)}</text>`);
    out.push(`<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${b.highlight ? '#d9480f' : '#4263eb'}"/>`);
    const v = Number.isFinite(b.value) ? `${Math.round(b.value).toLocaleString('en-US')} ${unit}` : 'n/a';
    out.push(`<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 16}">${esc(v)}</text>`);
  });
  out.push(`<line x1="${labelW}" y1="${top - 2}" x2="${labelW}" y2="${top + bars.length * rowH}" stroke="#333333"/>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
