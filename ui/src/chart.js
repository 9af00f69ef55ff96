/**
 * A uPlot line chart as a Preact component. uPlot: ~50 KB, canvas, fast with thousands of
 * points, no dependencies — the chart library Grafana-like tools reach for. The chart has an
 * accessible name and a text summary (the last values) for screen readers.
 */
import uPlot from 'uplot';
import { useEffect, useRef } from 'preact/hooks';
import { html } from './html.js';

const COLORS = ['#0b57d0', '#b3261e', '#146c2e', '#8e4a00', '#6a1b9a'];

/**
 * @param {{ title: string, x: number[], series: { label: string, values: (number|null)[] }[], xTime?: boolean, xLabel?: string, height?: number, testid?: string }} p
 */
export function Chart({ title, x, series, xTime = true, xLabel, height = 170, testid }) {
  const box = useRef(null);
  const plot = useRef(null);
  const data = [x, ...series.map((s) => s.values)];
  const shape = `${xTime}|${series.map((s) => s.label).join('|')}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const opts = {
      width: Math.max(240, el.clientWidth),
      height,
      // One point alone would make uPlot pick a range of years (time) or ±1 (steps): give it room.
      scales: { x: { time: xTime, range: (_u, min, max) => (min === max || min == null ? [(min ?? 0) - (xTime ? 60 : 1), (max ?? 0) + (xTime ? 0 : 1)] : [min, max]) } },
      axes: [{ label: xLabel, stroke: '#333', grid: { stroke: '#e3e3e3' } }, { stroke: '#333', grid: { stroke: '#e3e3e3' } }],
      series: [{ label: xLabel || 'time' }, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false }))],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
    };
    plot.current = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.current && plot.current.setSize({ width: Math.max(240, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current.destroy();
      plot.current = null;
    };
  }, [shape, height]);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  });

  const summary = series.map((s) => `${s.label}: ${fmt(lastValue(s.values))}`).join(', ');
  return html`<figure class="chart" data-testid=${testid}>
    <figcaption>${title}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title}. Latest ${summary || 'no data'}`}></div>
    ${x.length === 0 ? html`<p class="muted">No data yet.</p>` : null}
  </figure>`;
}

const lastValue = (v) => {
  for (let i = v.length - 1; i >= 0; i--) if (v[i] != null) return v[i];
  return null;
};
const fmt = (v) => (v == null ? '—' : Math.round(v * 1000) / 1000);
