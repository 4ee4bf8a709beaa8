import './style.css'
import type { Chart } from 'chart.js'
import { Api, ApiError, storedKey, storeKey } from './api.js'
import { drawChart, type ChartSpec } from './charts.js'
import { byId, clear, h } from './dom.js'
import {
  formatBucket,
  formatChange,
  formatInteger,
  formatLatency,
  formatPointChange,
  formatRate,
  formatTimestamp,
  formatTokens,
  formatUsd,
  formatUsdExact,
  type ChangeText,
} from './format.js'
import { errorRates, isEmptyRange, sortRows, stackLayers, tokenLayers, type SortOrder } from './shape.js'
import { apiFilters, parseFilters, RANGE_LABELS, RANGES, resolveRange, serializeFilters, type Filters, type Stack } from './state.js'
import type {
  AlertInfo,
  Breakdown,
  BudgetInfo,
  BudgetStatus,
  ErrorsPage,
  EventsPage,
  KeySelf,
  Summary,
  Timeseries,
  UsageEvent,
} from './types.js'

const LIVE_MS = 30_000
const BROWSER_TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'

let api: Api | null = null
let self: KeySelf | null = null
let filters: Filters = parseFilters(location.search, BROWSER_TZ)
let generation = 0
let lastRefresh = 0
let liveTimer: number | undefined
const charts = new Map<string, Chart>()
const chartSpecs = new Map<string, ChartSpec>()
const tableMode = new Set<string>()
let breakdownSort: { key: string; order: SortOrder } = { key: 'cost', order: 'desc' }
let lastBreakdown: Breakdown | null = null
let eventCursors: (string | null)[] = [null]
let optionsKey = ''

// ---- sign-in ------------------------------------------------------------------------------------

function describeKeyError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'This key was not accepted (401): it is unknown, mistyped or revoked. Paste the whole key again.'
    if (err.status === 403) return 'This key lacks the read scope (403): use a key created with scope read, or the admin key.'
    if (err.status === 429) return 'Too many attempts: wait a moment and try again.'
    return `Signing in failed: ${err.message}`
  }
  return 'Signing in failed: the service did not answer.'
}

async function signIn(key: string): Promise<void> {
  const candidate = new Api(key)
  self = await candidate.get<KeySelf>('/api/keys/self')
  api = candidate
  storeKey(key)
}

function showSignIn(message?: string): void {
  stopLive()
  api = null
  self = null
  byId('dashboard').hidden = true
  byId('session-actions').hidden = true
  byId('bound').hidden = true
  byId('live-status').textContent = ''
  optionsKey = ''
  filters = parseFilters(location.search, BROWSER_TZ)
  byId('signin').hidden = false
  const error = byId('signin-error')
  error.hidden = !message
  error.textContent = message ?? ''
  byId<HTMLInputElement>('key').focus()
}

function signOut(): void {
  storeKey(null)
  for (const c of charts.values()) c.destroy()
  charts.clear()
  showSignIn()
}

async function showDashboard(): Promise<void> {
  byId('signin').hidden = true
  byId('dashboard').hidden = false
  byId('session-actions').hidden = false
  const bound = byId('bound')
  if (self?.botId) {
    filters.bot = self.botId
    bound.hidden = false
    bound.textContent = `This key is bound to bot “${self.botId}”: you see only its usage.`
  } else bound.hidden = true
  setupFilters()
  startLive()
  await refresh()
}

// ---- filters ------------------------------------------------------------------------------------

function option(value: string, label: string, selected: boolean): HTMLOptionElement {
  const o = h('option', { value }, label)
  o.selected = selected
  return o
}

function fillSelect(id: string, values: string[], current: string, allLabel: string): void {
  const select = byId<HTMLSelectElement>(id)
  const all = [...new Set([...values, ...(current ? [current] : [])])].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
  clear(select, allLabel ? option('', allLabel, current === '') : null, ...all.map((v) => option(v, v, v === current)))
}

/** Current names that some ICU versions list only under their old spelling (Asia/Calcutta...). */
const MODERN_ZONES = ['Asia/Kolkata', 'Asia/Kathmandu', 'Asia/Ho_Chi_Minh', 'Asia/Yangon', 'Europe/Kyiv', 'America/Nuuk', 'Pacific/Kanton', 'Atlantic/Faroe']

function timeZones(): string[] {
  const supported = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? []
  const rest = [...new Set([filters.tz, ...MODERN_ZONES, ...supported])].filter((z) => z !== 'UTC' && z !== BROWSER_TZ).sort()
  return ['UTC', ...(BROWSER_TZ === 'UTC' ? [] : [BROWSER_TZ]), ...rest]
}

let filtersReady = false
function setupFilters(): void {
  const range = byId<HTMLSelectElement>('f-range')
  clear(range, ...RANGES.map((r) => option(r, RANGE_LABELS[r], r === filters.range)))
  const tz = byId<HTMLSelectElement>('f-tz')
  const zones = timeZones()
  clear(tz, ...zones.map((z) => option(z, z === BROWSER_TZ ? `${z} (browser)` : z, z === filters.tz)))
  syncFilterInputs()
  if (filtersReady) return
  filtersReady = true
  byId('filters').addEventListener('change', (e) => {
    const target = e.target as HTMLInputElement | HTMLSelectElement
    const next = { ...filters }
    switch (target.id) {
      case 'f-range': {
        next.range = target.value as Filters['range']
        if (next.range === 'custom' && (!next.from || !next.to)) {
          const r = resolveRange({ ...filters, range: filters.range === 'custom' ? '7d' : filters.range }, new Date())
          next.from = r.startDate.slice(0, 10)
          next.to = r.endDate.slice(0, 10)
        }
        break
      }
      case 'f-from':
        next.from = target.value
        break
      case 'f-to':
        next.to = target.value
        break
      case 'f-compare':
        next.compare = (target as HTMLInputElement).checked
        break
      default: {
        const key = target.id.slice(2) as 'bot' | 'provider' | 'model' | 'requestType' | 'success' | 'tz'
        ;(next as Record<string, unknown>)[key] = target.value
      }
    }
    if (next.range === 'custom' && (!next.from || !next.to)) return
    applyFilters(next)
  })
  byId<HTMLSelectElement>('f-stack').addEventListener('change', (e) => applyFilters({ ...filters, stack: (e.target as HTMLSelectElement).value as Stack }))
  byId<HTMLSelectElement>('f-dim').addEventListener('change', (e) => {
    const value = (e.target as HTMLSelectElement).value
    byId('meta-label').hidden = value !== 'metadata'
    if (value === 'metadata') {
      const key = byId<HTMLInputElement>('f-meta')
      key.focus()
      if (key.value) applyFilters({ ...filters, dim: `metadata.${key.value}` })
    } else applyFilters({ ...filters, dim: value })
  })
  byId<HTMLInputElement>('f-meta').addEventListener('change', (e) => {
    const key = (e.target as HTMLInputElement).value.trim()
    if (/^[A-Za-z0-9_.:-]{1,100}$/.test(key)) applyFilters({ ...filters, dim: `metadata.${key}` })
  })
  window.addEventListener('popstate', () => {
    filters = parseFilters(location.search, BROWSER_TZ)
    if (self?.botId) filters.bot = self.botId
    syncFilterInputs()
    void refresh()
  })
}

function syncFilterInputs(): void {
  byId<HTMLSelectElement>('f-range').value = filters.range
  byId('custom-from').hidden = filters.range !== 'custom'
  byId('custom-to').hidden = filters.range !== 'custom'
  byId<HTMLInputElement>('f-from').value = filters.from
  byId<HTMLInputElement>('f-to').value = filters.to
  byId<HTMLSelectElement>('f-success').value = filters.success
  byId<HTMLSelectElement>('f-tz').value = filters.tz
  byId<HTMLInputElement>('f-compare').checked = filters.compare
  byId<HTMLSelectElement>('f-stack').value = filters.stack
  const meta = filters.dim.startsWith('metadata.')
  byId<HTMLSelectElement>('f-dim').value = meta ? 'metadata' : filters.dim
  byId('meta-label').hidden = !meta
  if (meta) byId<HTMLInputElement>('f-meta').value = filters.dim.slice('metadata.'.length)
  const bot = byId<HTMLSelectElement>('f-bot')
  bot.disabled = Boolean(self?.botId)
  for (const id of ['f-bot', 'f-provider', 'f-model', 'f-requestType']) {
    const key = id.slice(2) as 'bot' | 'provider' | 'model' | 'requestType'
    const select = byId<HTMLSelectElement>(id)
    if (![...select.options].some((o) => o.value === filters[key])) select.append(option(filters[key], filters[key], true))
    select.value = filters[key]
  }
}

function applyFilters(next: Filters): void {
  if (self?.botId) next.bot = self.botId
  filters = next
  eventCursors = [null]
  history.pushState(null, '', location.pathname + serializeFilters(filters, BROWSER_TZ))
  syncFilterInputs()
  void refresh()
}

// ---- loading ------------------------------------------------------------------------------------

function showBanner(message: string | null): void {
  const banner = byId('banner')
  banner.hidden = message === null
  banner.textContent = message ?? ''
}

function handleError(err: unknown): void {
  if (err instanceof ApiError && err.status === 401) {
    storeKey(null)
    showSignIn('The service no longer accepts this key (401): sign in again.')
    return
  }
  showBanner(err instanceof ApiError ? `Loading failed: ${err.message}` : 'Loading failed: the service did not answer.')
}

async function refresh(): Promise<void> {
  if (!api) return
  const run = ++generation
  const now = new Date()
  const q = apiFilters(filters, now)
  const range = resolveRange(filters, now)
  byId('range-text').textContent = rangeText(range.startDate, range.endDate)
  const a = api
  byId('live-status').textContent = 'Loading…'
  try {
    // What the first paint needs (cards and charts) is asked for first: on the embedded engine the
    // queries run one after another, so everything else waits until these are drawn.
    const [summary, series] = await Promise.all([
      a.get<Summary>('/api/usage/summary', { ...q, limit: 10 }),
      a.get<Timeseries>('/api/usage/timeseries', { ...q, interval: range.interval, groupBy: filters.stack, limit: 8, percentiles: true }),
    ])
    if (run !== generation) return
    showBanner(null)
    renderCards(summary, undefined)
    renderCharts(summary, series)
    performance.mark('dashboard:meaningful-paint')
    const [previous, breakdownData, errors] = await Promise.all([
      // The previous period's latency (the summary's own previous block has totals only).
      filters.compare
        ? a.get<Summary>('/api/usage/summary', {
            ...q,
            startDate: summary.previous.from,
            endDate: new Date(Date.parse(summary.previous.to) - 1).toISOString(),
            limit: 1,
          })
        : null,
      a.get<Breakdown>('/api/usage/breakdown', { ...q, groupBy: filters.dim, limit: 200 }),
      a.get<ErrorsPage>('/api/usage/errors', { ...withoutSuccess(q), limit: 10, top: 10 }),
      loadOptions(a, q),
    ])
    if (run !== generation) return
    if (previous) renderCards(summary, previous)
    lastBreakdown = breakdownData
    renderBreakdown()
    renderErrors(errors)
    await Promise.all([loadEvents(a, 'reload'), loadBudgets(a)])
    if (run !== generation) return
    lastRefresh = Date.now()
    byId('live-status').textContent = `Updated ${new Date().toLocaleTimeString()}`
  } catch (err) {
    if (run !== generation) return
    byId('live-status').textContent = ''
    handleError(err)
  }
}

function withoutSuccess(q: Record<string, string>): Record<string, string> {
  const { success: _success, ...rest } = q
  return rest
}

function rangeText(start: string, end: string): string {
  const show = (s: string) => (s.length === 10 ? s : formatTimestamp(s, filters.tz))
  return `${show(start)} – ${show(end)} (${filters.tz})`
}

/** The values the bot/provider/model/type selects offer: everything seen in the range, unfiltered. */
async function loadOptions(a: Api, q: Record<string, string>): Promise<void> {
  const key = `${q.startDate}|${q.endDate.slice(0, 13)}|${q.tz}`
  if (key === optionsKey) return
  const base = { startDate: q.startDate, endDate: q.endDate, tz: q.tz, limit: 1000 }
  const [bots, models, types] = await Promise.all([
    a.get<Breakdown>('/api/usage/breakdown', { ...base, groupBy: 'botId' }),
    a.get<Breakdown>('/api/usage/breakdown', { ...base, groupBy: 'provider,model' }),
    a.get<Breakdown>('/api/usage/breakdown', { ...base, groupBy: 'requestType' }),
  ])
  const values = (b: Breakdown, dim: string) => [...new Set(b.rows.map((r) => r.group[dim]).filter((v): v is string => v !== null))]
  fillSelect('f-bot', values(bots, 'botId'), filters.bot, self?.botId ? '' : 'All bots')
  fillSelect('f-provider', values(models, 'provider'), filters.provider, 'All providers')
  fillSelect('f-model', values(models, 'model'), filters.model, 'All models')
  fillSelect('f-requestType', values(types, 'requestType'), filters.requestType, 'All types')
  optionsKey = key
}

// ---- cards --------------------------------------------------------------------------------------

function card(metric: string, label: string, value: string, raw: number | null, change: ChangeText | null, extra?: Node): HTMLElement {
  return h(
    'div',
    { class: 'card', 'data-metric': metric, 'data-value': raw === null ? '' : String(raw) },
    h('div', { class: 'card-label' }, label),
    h('div', { class: 'card-value' }, value),
    change ? h('div', { class: `card-change ${change.direction}` }, change.text, change.direction === 'none' ? '' : ' vs previous') : null,
    extra ?? null,
  )
}

/** `previous` undefined: the previous period's latency is still loading. */
function renderCards(s: Summary, previous: Summary | null | undefined): void {
  const t = s.totals
  const p = s.previous.totals
  const rel = (cur: number, prev: number) => (filters.compare ? formatChange(prev === 0 ? null : (cur - prev) / prev) : null)
  const cmp = filters.compare
  const unpriced =
    t.unpricedCalls > 0
      ? h('a', { class: 'card-link', href: '#events' }, 'Cost is incomplete: see the events')
      : null
  const p95Now = s.latency.p95Ms
  const p95Before = previous?.latency.p95Ms ?? null
  const p95Prev = p95Now === null || p95Before === null || p95Before === 0 ? null : (p95Now - p95Before) / p95Before
  clear(
    byId('cards'),
    card('calls', 'Calls', formatInteger(t.calls), t.calls, cmp ? formatChange(s.change.calls) : null),
    card('cost', 'Cost', formatUsd(t.cost), t.cost, cmp ? formatChange(s.change.cost) : null),
    card('totalTokens', 'Tokens', formatTokens(t.totalTokens), t.totalTokens, cmp ? formatChange(s.change.totalTokens) : null),
    card('inputTokens', 'Input tokens', formatTokens(t.inputTokens), t.inputTokens, rel(t.inputTokens, p.inputTokens)),
    card('outputTokens', 'Output tokens', formatTokens(t.outputTokens), t.outputTokens, rel(t.outputTokens, p.outputTokens)),
    card('cacheReadTokens', 'Cache read', formatTokens(t.cacheReadTokens), t.cacheReadTokens, rel(t.cacheReadTokens, p.cacheReadTokens)),
    card('cacheWriteTokens', 'Cache write', formatTokens(t.cacheWriteTokens), t.cacheWriteTokens, rel(t.cacheWriteTokens, p.cacheWriteTokens)),
    card('reasoningTokens', 'Reasoning', formatTokens(t.reasoningTokens), t.reasoningTokens, rel(t.reasoningTokens, p.reasoningTokens)),
    card('successRate', 'Success rate', formatRate(t.successRate), t.successRate, cmp ? formatPointChange(s.change.successRate) : null),
    card('p95', 'p95 latency', formatLatency(s.latency.p95Ms), s.latency.p95Ms, cmp && previous !== undefined ? formatChange(p95Prev) : null),
    card('unpricedCalls', 'Unpriced events', formatInteger(t.unpricedCalls), t.unpricedCalls, rel(t.unpricedCalls, p.unpricedCalls), unpriced ?? undefined),
  )
  byId('cards')
    .querySelector('[data-metric="unpricedCalls"]')
    ?.classList.toggle('warn', t.unpricedCalls > 0)
}

// ---- charts -------------------------------------------------------------------------------------

function chartPanel(id: string, spec: ChartSpec | null, emptyText = 'No usage in this range'): void {
  const panel = byId(id)
  let body = panel.querySelector<HTMLElement>('.chart-body')
  if (!body) {
    const toggle = h('button', { type: 'button', class: 'table-toggle', 'aria-pressed': 'false' }, 'Show table')
    toggle.addEventListener('click', () => {
      if (tableMode.has(id)) tableMode.delete(id)
      else tableMode.add(id)
      chartPanel(id, chartSpecs.get(id) ?? null)
    })
    panel.querySelector('.panel-head')?.append(toggle)
    body = h('div', { class: 'chart-body' })
    panel.append(body)
  }
  const toggle = panel.querySelector<HTMLButtonElement>('.table-toggle')
  const asTable = tableMode.has(id)
  if (toggle) {
    toggle.setAttribute('aria-pressed', String(asTable))
    toggle.textContent = asTable ? 'Show chart' : 'Show table'
  }
  charts.get(id)?.destroy()
  charts.delete(id)
  if (spec) chartSpecs.set(id, spec)
  else chartSpecs.delete(id)
  if (!spec) {
    clear(body, h('p', { class: 'empty' }, emptyText))
    return
  }
  if (asTable) {
    clear(body, h('div', { class: 'table-wrap' }, chartTable(panel.dataset.title ?? id, spec)))
    return
  }
  const canvas = h('canvas', { role: 'img', 'aria-label': `${panel.dataset.title ?? id} chart; use Show table for the values` })
  clear(body, h('div', { class: spec.kind === 'hbar' ? 'canvas-box hbar' : 'canvas-box' }, canvas))
  charts.set(id, drawChart(canvas, spec, undefined))
}

function chartTable(title: string, spec: ChartSpec): HTMLTableElement {
  const fmt = (d: ChartSpec['datasets'][number], v: number | null) =>
    v === null ? '–' : d.axis === 'y1' && spec.format2 ? spec.format2(v) : spec.format(v)
  return h(
    'table',
    {},
    h('caption', { class: 'sr-only' }, title),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, spec.kind === 'hbar' ? 'Name' : 'Time'), ...spec.datasets.map((d) => h('th', { scope: 'col', class: 'num' }, d.label)))),
    h(
      'tbody',
      {},
      ...spec.labels.map((label, i) => h('tr', {}, h('th', { scope: 'row' }, label), ...spec.datasets.map((d) => h('td', { class: 'num' }, fmt(d, d.values[i]))))),
    ),
  )
}

function renderCharts(s: Summary, ts: Timeseries): void {
  const empty = isEmptyRange(ts.buckets)
  const labels = ts.buckets.map((b) => formatBucket(b.start, ts.interval, ts.tz))
  const usd = (v: number) => formatUsd(v)
  chartPanel(
    'chart-cost',
    empty ? null : { kind: 'stacked', labels, datasets: stackLayers(ts, (b) => b.cost), format: usd },
  )
  chartPanel('chart-tokens', empty ? null : { kind: 'stacked', labels, datasets: tokenLayers(ts.buckets), format: formatTokens })
  chartPanel(
    'chart-calls',
    empty
      ? null
      : {
          kind: 'callsAndRate',
          labels,
          datasets: [
            { label: 'Calls', values: ts.buckets.map((b) => b.calls) },
            { label: 'Error rate', values: errorRates(ts.buckets), axis: 'y1' },
          ],
          format: formatInteger,
          format2: (v) => formatRate(v),
        },
  )
  const lat = (k: 'p50Ms' | 'p95Ms' | 'p99Ms') => ts.buckets.map((b) => b.latency?.[k] ?? null)
  const hasLatency = ts.buckets.some((b) => (b.latency?.samples ?? 0) > 0)
  chartPanel(
    'chart-latency',
    empty || !hasLatency
      ? null
      : {
          kind: 'lines',
          labels,
          datasets: [
            { label: 'p50', values: lat('p50Ms') },
            { label: 'p95', values: lat('p95Ms') },
            { label: 'p99', values: lat('p99Ms') },
          ],
          format: formatLatency,
        },
    empty ? 'No usage in this range' : 'No latencies reported in this range',
  )
  const bots = s.byBot.filter((b) => b.calls > 0)
  chartPanel('chart-bots', bots.length === 0 ? null : { kind: 'hbar', labels: bots.map((b) => b.botId), datasets: [{ label: 'Cost', values: bots.map((b) => b.cost) }], format: usd })
  const models = s.byModel.filter((m) => m.calls > 0)
  chartPanel(
    'chart-models',
    models.length === 0 ? null : { kind: 'hbar', labels: models.map((m) => m.model), datasets: [{ label: 'Cost', values: models.map((m) => m.cost) }], format: usd },
  )
}

// ---- tables -------------------------------------------------------------------------------------

interface Column<T> {
  key: string
  label: string
  value: (row: T) => string | number | null
  show?: (row: T) => string
  num?: boolean
}

function sortableTable<T>(rows: T[], columns: Column<T>[], sort: { key: string; order: SortOrder }, onSort: (key: string) => void): HTMLTableElement {
  const column = columns.find((c) => c.key === sort.key) ?? columns[0]
  const sorted = sortRows(rows, column.value, sort.order)
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...columns.map((c) =>
          h(
            'th',
            { scope: 'col', class: c.num ? 'num' : null, 'aria-sort': c.key === sort.key ? (sort.order === 'asc' ? 'ascending' : 'descending') : 'none' },
            h('button', { type: 'button', class: 'sort', onclick: () => onSort(c.key) }, c.label, c.key === sort.key ? (sort.order === 'asc' ? ' ▲' : ' ▼') : ''),
          ),
        ),
      ),
    ),
    h('tbody', {}, ...sorted.map((r) => h('tr', {}, ...columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.show ? c.show(r) : String(c.value(r) ?? '–')))))),
  )
}

function renderBreakdown(): void {
  const b = lastBreakdown
  const host = byId('breakdown-table')
  if (!b) return
  if (b.rows.length === 0) {
    clear(host, h('p', { class: 'empty' }, 'No usage in this range'))
    return
  }
  type Row = Breakdown['rows'][number]
  const dims: Column<Row>[] = b.groupBy.map((d) => ({ key: `g:${d}`, label: d, value: (r) => r.group[d], show: (r) => r.group[d] ?? '(none)' }))
  const columns: Column<Row>[] = [
    ...dims,
    { key: 'calls', label: 'Calls', value: (r) => r.calls, show: (r) => formatInteger(r.calls), num: true },
    { key: 'failures', label: 'Failures', value: (r) => r.failures, show: (r) => formatInteger(r.failures), num: true },
    { key: 'successRate', label: 'Success', value: (r) => r.successRate, show: (r) => formatRate(r.successRate), num: true },
    { key: 'inputTokens', label: 'Input tok.', value: (r) => r.inputTokens, show: (r) => formatTokens(r.inputTokens), num: true },
    { key: 'outputTokens', label: 'Output tok.', value: (r) => r.outputTokens, show: (r) => formatTokens(r.outputTokens), num: true },
    { key: 'cost', label: 'Cost', value: (r) => r.cost, show: (r) => formatUsdExact(r.cost), num: true },
    { key: 'p95', label: 'p95', value: (r) => r.latency.p95Ms, show: (r) => formatLatency(r.latency.p95Ms), num: true },
  ]
  const more = b.groupCount > b.rows.length ? h('p', { class: 'muted' }, `Showing the top ${b.rows.length} of ${b.groupCount} groups by cost.`) : null
  clear(
    host,
    sortableTable(b.rows, columns, breakdownSort, (key) => {
      breakdownSort = { key, order: breakdownSort.key === key && breakdownSort.order === 'desc' ? 'asc' : 'desc' }
      renderBreakdown()
      host.querySelector<HTMLButtonElement>(`th[aria-sort]:not([aria-sort="none"]) button`)?.focus()
    }),
    more,
  )
}

function eventDetails(e: UsageEvent): HTMLElement {
  return h('pre', { class: 'json' }, JSON.stringify(e, null, 2))
}

function renderErrors(p: ErrorsPage): void {
  const top = byId('top-errors-table')
  if (p.topMessages.length === 0) clear(top, h('p', { class: 'empty' }, 'No failures in this range'))
  else
    clear(
      top,
      h(
        'table',
        {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Message'), h('th', { scope: 'col', class: 'num' }, 'Count'), h('th', { scope: 'col' }, 'Last seen'))),
        h(
          'tbody',
          {},
          ...p.topMessages.map((m) =>
            h('tr', {}, h('td', { class: 'msg' }, m.message ?? '(no message)'), h('td', { class: 'num' }, formatInteger(m.count)), h('td', {}, formatTimestamp(m.lastSeen, filters.tz))),
          ),
        ),
      ),
      h('p', { class: 'muted' }, `${formatInteger(p.failures)} failures in this range.`),
    )
  const list = byId('failures-list')
  if (p.errors.length === 0) clear(list, h('p', { class: 'empty' }, 'No failures in this range'))
  else
    clear(
      list,
      ...p.errors.map((e) =>
        h(
          'details',
          { class: 'failure' },
          h('summary', {}, h('span', { class: 'muted' }, formatTimestamp(e.createdAt, filters.tz)), ' ', h('strong', {}, e.botId), ' · ', e.model, ' · ', e.errorMessage ?? '(no message)'),
          eventDetails(e),
        ),
      ),
    )
}

async function loadEvents(a: Api, action: 'reload' | 'next' | 'first'): Promise<void> {
  // A live refresh keeps the page the reader is on; filter changes start again (see applyFilters).
  if (action === 'first') eventCursors = [null]
  if (action === 'next') {
    const next = byId('events-next').dataset.cursor
    if (!next) return
    eventCursors.push(next)
  }
  const cursor = eventCursors[eventCursors.length - 1]
  const q = apiFilters(filters, new Date())
  const page = await a.get<EventsPage>('/api/usage/events', { ...q, limit: 25, cursor: cursor ?? undefined })
  renderEvents(page)
}

function renderEvents(page: EventsPage): void {
  const host = byId('events-table')
  const next = byId<HTMLButtonElement>('events-next')
  next.disabled = page.nextCursor === null
  next.dataset.cursor = page.nextCursor ?? ''
  byId<HTMLButtonElement>('events-first').disabled = eventCursors.length <= 1
  byId('events-page').textContent = `Page ${eventCursors.length}`
  if (page.events.length === 0) {
    clear(host, h('p', { class: 'empty' }, 'No events in this range'))
    return
  }
  const rows: HTMLElement[] = []
  page.events.forEach((e, i) => {
    const detailId = `ev-${i}`
    const detail = h('tr', { id: detailId, class: 'detail', hidden: true }, h('td', { colspan: 8 }, eventDetails(e)))
    const button = h('button', { type: 'button', class: 'expand', 'aria-expanded': 'false', 'aria-controls': detailId, 'aria-label': `Details of event ${e.id}` }, '+')
    button.addEventListener('click', () => {
      detail.hidden = !detail.hidden
      button.setAttribute('aria-expanded', String(!detail.hidden))
      button.textContent = detail.hidden ? '+' : '−'
    })
    rows.push(
      h(
        'tr',
        { class: e.success ? null : 'failed' },
        h('td', {}, button),
        h('td', {}, formatTimestamp(e.createdAt, filters.tz)),
        h('td', {}, e.botId),
        h('td', {}, e.model),
        h('td', {}, e.requestType),
        h('td', {}, e.success ? 'ok' : 'failed'),
        h('td', { class: 'num' }, formatTokens(e.totalTokens)),
        h('td', { class: 'num' }, e.estimatedCost === null ? 'unpriced' : formatUsdExact(e.estimatedCost)),
      ),
      detail,
    )
  })
  clear(
    host,
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h('tr', {}, ...['', 'Time', 'Bot', 'Model', 'Type', 'Outcome'].map((l) => h('th', { scope: 'col' }, l)), h('th', { scope: 'col', class: 'num' }, 'Tokens'), h('th', { scope: 'col', class: 'num' }, 'Cost')),
      ),
      h('tbody', {}, ...rows),
    ),
  )
}

/** The period's first and last local day in the budget's own zone (periodEnd is exclusive). */
function periodText(s: BudgetStatus): string {
  const day = (ms: number) => formatTimestamp(new Date(ms).toISOString(), s.timeZone).slice(0, 10)
  return `${day(Date.parse(s.periodStart))} – ${day(Date.parse(s.periodEnd) - 1)} (${s.timeZone})`
}

async function loadBudgets(a: Api): Promise<void> {
  const host = byId('budgets-body')
  if (!self?.scopes.includes('admin')) {
    clear(host, h('p', { class: 'muted' }, 'Budgets and alerts need a key with the admin scope.'))
    return
  }
  const { budgets } = await a.get<{ budgets: BudgetInfo[] }>('/api/budgets', filters.bot ? { botId: filters.bot } : {})
  if (budgets.length === 0) {
    clear(host, h('p', { class: 'empty' }, 'No budgets defined (POST /api/budgets creates one).'))
    return
  }
  const [statuses, alerts] = await Promise.all([
    Promise.all(budgets.map((b) => a.get<BudgetStatus>(`/api/budgets/${encodeURIComponent(b.id)}/status`))),
    a.get<{ alerts: AlertInfo[] }>('/api/alerts', { limit: 20 }),
  ])
  const ids = new Set(budgets.map((b) => b.id))
  const rows = statuses.map((s) => {
    const pct = Math.min(100, s.percent)
    const projectedPct = s.projectedUsd === null || s.limitUsd === 0 ? null : Math.min(100, (s.projectedUsd / s.limitUsd) * 100)
    return h(
      'div',
      { class: 'budget' },
      h('div', { class: 'budget-head' }, h('strong', {}, s.name), h('span', { class: 'muted' }, ` ${s.period}, ${periodText(s)}`)),
      h(
        'div',
        { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(s.percent), 'aria-label': `${s.name}: ${s.percent}% of the limit spent` },
        projectedPct === null ? null : h('div', { class: 'bar-projected', style: `width:${projectedPct}%` }),
        h('div', { class: `bar-fill${s.percent >= 100 ? ' over' : ''}`, style: `width:${pct}%` }),
      ),
      h(
        'div',
        { class: 'budget-figures' },
        `${formatUsd(s.spentUsd)} of ${formatUsd(s.limitUsd)} (${s.percent}%)`,
        s.projectedUsd === null ? '' : ` · projected ${formatUsd(s.projectedUsd)}`,
        s.projectedOverrun ? h('span', { class: 'badge warn' }, 'projected overrun') : '',
        ' · thresholds ',
        s.thresholds.map((t) => `${t.percent}%${t.crossed ? ' ✓' : ''}`).join(', ') || 'none',
      ),
    )
  })
  const fired = alerts.alerts.filter((al) => ids.has(al.budgetId))
  clear(
    host,
    ...rows,
    h('h3', {}, 'Alerts fired'),
    fired.length === 0
      ? h('p', { class: 'empty' }, 'No alerts yet')
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            {},
            h('thead', {}, h('tr', {}, ...['When', 'Budget', 'Kind', 'Spent', 'Delivery'].map((l) => h('th', { scope: 'col' }, l)))),
            h(
              'tbody',
              {},
              ...fired.map((al) =>
                h(
                  'tr',
                  {},
                  h('td', {}, formatTimestamp(al.createdAt, filters.tz)),
                  h('td', {}, al.budgetName ?? al.budgetId),
                  h('td', {}, al.kind === 'projected' ? 'projected overrun' : `${al.threshold}% reached`),
                  h('td', {}, `${formatUsd(al.spentUsd)} / ${formatUsd(al.limitUsd)}`),
                  h('td', {}, al.deliveries.map((d) => `${d.channel}: ${d.status}`).join(', ') || '–'),
                ),
              ),
            ),
          ),
        ),
  )
}

// ---- export -------------------------------------------------------------------------------------

async function exportFile(kind: string): Promise<void> {
  if (!api) return
  const status = byId('export-status')
  const now = new Date()
  const q = apiFilters(filters, now)
  const range = resolveRange(filters, now)
  let blob: Blob
  let name: string
  status.textContent = 'Preparing…'
  try {
    if (kind === 'monthly') {
      const month = range.startDate.slice(0, 7)
      const { startDate: _s, endDate: _e, success: _x, ...rest } = q
      blob = await api.blob('/api/reports/monthly', { ...rest, month, format: 'csv' })
      name = `usage-report-${month}.csv`
    } else {
      blob = await api.blob('/api/usage/export', { ...q, format: kind })
      name = `usage-${range.startDate.slice(0, 10)}-${range.endDate.slice(0, 10)}.${kind}`
    }
  } catch (err) {
    status.textContent = err instanceof ApiError ? `Export failed: ${err.message}` : 'Export failed'
    return
  }
  const url = URL.createObjectURL(blob)
  const link = h('a', { href: url, download: name, hidden: true })
  document.body.append(link)
  link.click()
  link.remove()
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000)
  status.textContent = `Downloaded ${name}`
}

// ---- live ---------------------------------------------------------------------------------------

function startLive(): void {
  stopLive()
  liveTimer = window.setInterval(() => {
    if (document.visibilityState === 'visible' && byId<HTMLInputElement>('live').checked) void refresh()
  }, LIVE_MS)
}

function stopLive(): void {
  if (liveTimer !== undefined) window.clearInterval(liveTimer)
  liveTimer = undefined
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && api && byId<HTMLInputElement>('live').checked && Date.now() - lastRefresh > LIVE_MS) void refresh()
})

// ---- boot ---------------------------------------------------------------------------------------

function wire(): void {
  byId('signin-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const input = byId<HTMLInputElement>('key')
    const key = input.value.trim()
    if (!key) return
    const button = byId<HTMLButtonElement>('signin-form').querySelector('button')
    if (button) button.disabled = true
    signIn(key)
      .then(() => {
        input.value = ''
        return showDashboard()
      })
      .catch((err: unknown) => showSignIn(describeKeyError(err)))
      .finally(() => {
        if (button) button.disabled = false
      })
  })
  byId('signout').addEventListener('click', signOut)
  byId('refresh').addEventListener('click', () => void refresh())
  byId('events-next').addEventListener('click', () => api && void loadEvents(api, 'next').catch(handleError))
  byId('events-first').addEventListener('click', () => api && void loadEvents(api, 'first').catch(handleError))
  for (const button of document.querySelectorAll<HTMLButtonElement>('[data-export]')) {
    button.addEventListener('click', () => void exportFile(button.dataset.export ?? 'csv'))
  }
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    for (const [id, spec] of chartSpecs) chartPanel(id, spec)
  })
}

async function boot(): Promise<void> {
  wire()
  const key = storedKey()
  if (!key) return showSignIn()
  try {
    await signIn(key)
    await showDashboard()
  } catch (err) {
    storeKey(null)
    showSignIn(describeKeyError(err))
  }
}

void boot()
