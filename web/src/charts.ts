/** Chart.js, registered with only the parts the dashboard draws (keeps the bundle small). */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
  type ChartDataset,
} from 'chart.js'
import { PALETTE, PALETTE_DARK } from './shape.js'

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Tooltip, Legend)

export const dark = () => window.matchMedia('(prefers-color-scheme: dark)').matches
export const palette = () => (dark() ? PALETTE_DARK : PALETTE)
const DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3]]

export interface ChartSpec {
  kind: 'stacked' | 'lines' | 'callsAndRate' | 'hbar'
  labels: string[]
  datasets: { label: string; values: (number | null)[]; axis?: 'y' | 'y1' }[]
  format: (v: number) => string
  format2?: (v: number) => string
}

/** Draws (or redraws) a chart into a canvas; returns the Chart to destroy later. */
export function drawChart(canvas: HTMLCanvasElement, spec: ChartSpec, previous: Chart | undefined): Chart {
  previous?.destroy()
  const colors = palette()
  const text = dark() ? '#d0d4da' : '#333a44'
  const grid = dark() ? 'rgba(255,255,255,0.1)' : 'rgba(0,0,0,0.08)'
  Chart.defaults.color = text
  Chart.defaults.font.family = 'system-ui, sans-serif'
  const datasets: ChartDataset[] = spec.datasets.map((d, i) => {
    const color = colors[i % colors.length]
    if (spec.kind === 'lines' || (spec.kind === 'callsAndRate' && d.axis === 'y1')) {
      return {
        type: 'line',
        label: d.label,
        data: d.values,
        borderColor: spec.kind === 'callsAndRate' ? colors[5] : color,
        backgroundColor: spec.kind === 'callsAndRate' ? colors[5] : color,
        borderDash: DASHES[i % DASHES.length],
        borderWidth: 2,
        pointRadius: spec.labels.length > 60 ? 0 : 2,
        spanGaps: false,
        yAxisID: d.axis ?? 'y',
      }
    }
    return { type: 'bar', label: d.label, data: d.values, backgroundColor: color, yAxisID: d.axis ?? 'y', stack: spec.kind === 'stacked' ? 's' : undefined }
  })
  const stacked = spec.kind === 'stacked'
  const config: ChartConfiguration = {
    type: 'bar',
    data: { labels: spec.labels, datasets },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      indexAxis: spec.kind === 'hbar' ? 'y' : 'x',
      interaction: { mode: spec.kind === 'hbar' ? 'nearest' : 'index', intersect: false },
      plugins: {
        legend: { display: spec.kind !== 'hbar', position: 'bottom', labels: { boxWidth: 12 } },
        tooltip: {
          callbacks: {
            label: (ctx) => {
              const v = spec.kind === 'hbar' ? ctx.parsed.x : ctx.parsed.y
              if (v === null || v === undefined) return `${ctx.dataset.label}: –`
              const f = ctx.dataset.yAxisID === 'y1' && spec.format2 ? spec.format2 : spec.format
              return `${ctx.dataset.label}: ${f(v)}`
            },
            footer: stacked
              ? (items) => `Total: ${spec.format(items.reduce((s, i) => s + (i.parsed.y ?? 0), 0))}`
              : undefined,
          },
        },
      },
      scales:
        spec.kind === 'hbar'
          ? {
              x: { beginAtZero: true, grid: { color: grid }, ticks: { callback: (v) => spec.format(Number(v)) } },
              y: { grid: { display: false } },
            }
          : {
              x: { stacked, grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 } },
              y: { stacked, beginAtZero: true, grid: { color: grid }, ticks: { callback: (v) => spec.format(Number(v)) } },
              ...(spec.kind === 'callsAndRate'
                ? {
                    y1: {
                      position: 'right' as const,
                      beginAtZero: true,
                      suggestedMax: 0.1,
                      grid: { display: false },
                      ticks: { callback: (v: string | number) => (spec.format2 ?? spec.format)(Number(v)) },
                    },
                  }
                : {}),
            },
    },
  }
  return new Chart(canvas, config)
}
