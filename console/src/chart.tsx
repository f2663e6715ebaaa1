import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** Colours with at least 3:1 contrast on white, one per adapter, in a fixed order. */
export const PALETTE = ["#1d4ed8", "#b45309", "#047857", "#b91c1c", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"] as const;

export interface ChartSeries {
  readonly label: string;
  readonly values: readonly (number | null)[];
  readonly color: string;
  readonly dashed?: boolean;
}

export interface TimeChartProps {
  readonly title: string;
  /** Says what the chart shows to someone who cannot see it. */
  readonly description: string;
  /** Unix seconds. */
  readonly times: readonly number[];
  readonly series: readonly ChartSeries[];
  readonly format: (value: number) => string;
}

const HEIGHT = 180;

/** A small uPlot line chart over the history's intervals; resized with its box, rebuilt when its series change. */
export function TimeChart({ title, description, times, series, format }: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const shape = series.map((s) => `${s.label}:${s.color}:${s.dashed === true}`).join("|");

  useEffect(() => {
    const element = box.current;
    if (element === null) return;
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height: HEIGHT,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: "#374151", grid: { stroke: "#e5e7eb" }, ticks: { stroke: "#d1d5db" } },
        {
          stroke: "#374151",
          grid: { stroke: "#e5e7eb" },
          ticks: { stroke: "#d1d5db" },
          size: 64,
          values: (_u, splits) => splits.map((value) => format(value)),
        },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          spanGaps: false,
          ...(s.dashed === true ? { dash: [4, 3] } : {}),
          value: (_u: uPlot, value: number | null) => (value === null ? "–" : format(value)),
        })),
      ],
    };
    plot.current = new uPlot(options, [[...times], ...series.map((s) => [...s.values])] as uPlot.AlignedData, element);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, element.clientWidth), height: HEIGHT }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
    // Rebuilt only when the set of series changes; new values go through setData below.
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([[...times], ...series.map((s) => [...s.values])] as uPlot.AlignedData);
  }, [times, series]);

  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} class="chart-box" role="img" aria-label={description} />
      {times.length < 2 && <p class="muted small">Collecting: a point every few seconds.</p>}
    </figure>
  );
}
