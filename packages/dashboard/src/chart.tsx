// Time-series charts with uPlot (about 20 KB gzipped): a line per series over shared timestamps.
// The component owns one uPlot instance, feeds it new data in place, and follows its box's width.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartSeries {
  label: string;
  /** One value per timestamp; null where the series has no point. */
  values: Array<number | null>;
  /** A CSS color; the palette below by default. */
  color?: string;
}

export interface ChartProps {
  /** Accessible name of the chart (the canvas has no text of its own). */
  title: string;
  /** Seconds since the Unix epoch, ascending. */
  times: number[];
  series: ChartSeries[];
  /** How a value reads on the axis and in the legend ("12%", "240 ms"). */
  format?: (value: number) => string;
  height?: number;
  /** Horizontal lines (a threshold, an SLO target). */
  thresholds?: Array<{ value: number; label: string }>;
}

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const { title, times, series, format, height = 180, thresholds = [] } = props;
  const shape = `${series.map((s) => s.label).join("\u0000")}|${thresholds.map((t) => t.value).join(",")}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fmt = format ?? ((v: number) => String(v));
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      series: [
        {},
        ...series.map((s, i) => ({ label: s.label, stroke: s.color ?? PALETTE[i % PALETTE.length], width: 2, spanGaps: false, value: (u: uPlot, v: number | null, seriesIdx: number, idx: number | null) => legendValue(u, v, seriesIdx, idx, fmt) })),
        ...thresholds.map((t) => ({ label: t.label, stroke: "#6b7280", dash: [4, 4], width: 1, points: { show: false } })),
      ],
      axes: [{}, { values: (_u: uPlot, ticks: number[]) => ticks.map(fmt), size: 60 }],
      scales: { x: { time: true } },
      legend: { live: true },
    };
    const u = new uPlot(opts, toData(times, series, thresholds), el);
    plot.current = u;
    const observer = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      u.destroy();
      plot.current = undefined;
    };
    // Rebuilt only when the series' set changes; new points go through setData below.
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData(toData(times, series, thresholds));
  }, [times, series, thresholds]);

  return <div class="chart" role="img" aria-label={title} ref={box} />;
}

/** The value under the cursor; with no cursor on the chart, the series' latest value (not a dash). */
function legendValue(u: uPlot, v: number | null, seriesIdx: number, idx: number | null, fmt: (value: number) => string): string {
  if (v !== null) return fmt(v);
  if (idx !== null) return "–";
  const values = u.data[seriesIdx] ?? [];
  for (let i = values.length - 1; i >= 0; i--) {
    const last = values[i];
    if (typeof last === "number") return fmt(last);
  }
  return "–";
}

function toData(times: number[], series: ChartSeries[], thresholds: Array<{ value: number }>): uPlot.AlignedData {
  return [times, ...series.map((s) => s.values), ...thresholds.map((t) => times.map(() => t.value))] as uPlot.AlignedData;
}
