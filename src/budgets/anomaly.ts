import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../db/connect.js'
import { spendPerHour } from '../analytics/reader.js'
import { usdToNumber } from '../lib/money.js'
import type { CommittedEvent } from '../usage/ingest.js'
import { dollars, type AlertMessage } from './channels.js'
import type { DeliveryWorker, OutboxMessage, OutboxSource } from './delivery.js'
import {
  formatHundredths,
  listSpendAlertRules,
  recordSpikes,
  spikeKey,
  spikesWithRules,
  type SpendAlertRule,
  type SpikeCandidate,
  type StoredSpike,
} from './anomaly-store.js'

/**
 * Unusual-spend alerts. The method (docs/budgets.md, "Unusual spend"): for each series (a bot, or
 * a bot's model) and UTC hour h, the baseline is the median of the series' spend in the same hour
 * on each of the previous `baselineDays` days (h - 24 h, h - 48 h, ...; an hour without spend
 * counts as 0). Hour h is unusual when it spent more than multiple x baseline AND at least
 * minSpend. A spike is a run of unusual hours; it alerts once, for its first hour: an hour whose
 * previous hour was unusual too continues a spike already alerted. Each evaluation looks at the
 * hour in progress (it may alert as soon as its spend so far is unusual) and the hour before
 * (spend reported late). All spend comes from the hourly rollup, which is exact per UTC hour.
 */

export const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS
/** Commits trigger at most one evaluation per this long (each reads the last hours of every active bot). */
const COMMIT_EVALUATION_GAP_MS = 5_000

export function median(values: bigint[]): bigint {
  if (values.length === 0) return 0n
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2n
}

export interface HourCheck {
  hour: number
  spent: bigint
  baseline: bigint
  /** What the hour must exceed: multiple x baseline, at least minSpend. */
  threshold: bigint
  unusual: boolean
}

type RuleMethod = Pick<SpendAlertRule, 'multipleHundredths' | 'minSpend' | 'baselineDays'>

/** Whether `hour` (epoch ms, a UTC hour start) of a series with spend `byHour` is unusual under `rule`. */
export function checkHour(byHour: ReadonlyMap<number, bigint>, hour: number, rule: RuleMethod): HourCheck {
  const history = Array.from({ length: rule.baselineDays }, (_, i) => byHour.get(hour - (i + 1) * DAY_MS) ?? 0n)
  const baseline = median(history)
  const over = (baseline * rule.multipleHundredths) / 100n
  const spent = byHour.get(hour) ?? 0n
  return { hour, spent, baseline, threshold: over > rule.minSpend ? over : rule.minSpend, unusual: spent > over && spent >= rule.minSpend }
}

/** The hours an evaluation at `currentHour` reads: the last three hours, and the same hours on each baseline day. */
function hoursToRead(currentHour: number, baselineDays: number): Date[] {
  const hours: Date[] = []
  for (let day = 0; day <= baselineDays; day++) for (let back = 0; back < 3; back++) hours.push(new Date(currentHour - back * HOUR_MS - day * DAY_MS))
  return hours
}

export interface SeriesSpend {
  rule: SpendAlertRule
  botId: string
  /** '' for a per-bot series. */
  model: string
  byHour: Map<number, bigint>
}

/**
 * Hourly spend of every series the rules watch, for the bots that spent in the current or the
 * previous hour (a bot quiet in both cannot alert), in one statement (analytics' reader).
 */
export async function seriesSpend(database: Database, rules: SpendAlertRule[], currentHour: number): Promise<SeriesSpend[]> {
  if (rules.length === 0) return []
  const days = Math.max(...rules.map((r) => r.baselineDays))
  const byModel = rules.some((r) => r.per === 'model' || r.scope.model !== null)
  const bots = rules.every((r) => r.scope.botId !== null) ? [...new Set(rules.map((r) => r.scope.botId as string))] : null
  const rows = await spendPerHour(database, { hours: hoursToRead(currentHour, days), botIds: bots, byModel, activeSince: new Date(currentHour - HOUR_MS) })
  const series = new Map<string, SeriesSpend>()
  for (const rule of rules) {
    for (const r of rows) {
      if (rule.scope.botId !== null && r.botId !== rule.scope.botId) continue
      if (rule.scope.model !== null && r.model !== rule.scope.model) continue
      const seriesModel = rule.per === 'model' ? r.model : ''
      const key = `${rule.id}\u0000${r.botId}\u0000${seriesModel}`
      let s = series.get(key)
      if (!s) {
        s = { rule, botId: r.botId, model: seriesModel, byHour: new Map() }
        series.set(key, s)
      }
      const at = r.hour.getTime()
      s.byHour.set(at, (s.byHour.get(at) ?? 0n) + r.spent)
    }
  }
  return [...series.values()]
}

/** The spikes that start in the current hour or the one before. */
export function findSpikes(series: SeriesSpend[], currentHour: number): SpikeCandidate[] {
  const found: SpikeCandidate[] = []
  for (const s of series) {
    for (const hour of [currentHour - HOUR_MS, currentHour]) {
      const check = checkHour(s.byHour, hour, s.rule)
      if (!check.unusual || checkHour(s.byHour, hour - HOUR_MS, s.rule).unusual) continue
      const { spent, baseline, threshold } = check
      found.push({ rule: s.rule, botId: s.botId, model: s.model, hour: new Date(hour), spent, baseline, threshold, partial: hour === currentHour })
    }
  }
  return found
}

const hourLabel = (hour: Date) => `${hour.toISOString().slice(0, 13).replace('T', ' ')}:00 UTC`

export function composeSpike(spike: StoredSpike, rule: SpendAlertRule): AlertMessage {
  const who = spike.model === '' ? `Bot ${spike.botId}` : `Bot ${spike.botId} on ${spike.model}`
  const ratio = spike.baseline === 0n ? null : Number((spike.spent * 100n) / spike.baseline) / 100
  const subject =
    `Unusual spend: ${who} spent ${dollars(spike.spent)}${spike.partial ? ' so far' : ''} in the hour from ${hourLabel(spike.hour)}, ` +
    (ratio === null ? `against a usual ${dollars(0n)}` : `${ratio}x its usual ${dollars(spike.baseline)}`)
  const facts = [
    { label: 'Rule', value: `${rule.name} (${rule.id})` },
    { label: 'Bot', value: spike.botId },
    ...(spike.model === '' ? [] : [{ label: 'Model', value: spike.model }]),
    { label: 'Hour', value: `${hourLabel(spike.hour)}${spike.partial ? ' (in progress)' : ''}` },
    { label: 'Spent', value: dollars(spike.spent) },
    { label: 'Usual', value: `${dollars(spike.baseline)} (median of this hour on the previous ${rule.baselineDays} days)` },
    { label: 'Threshold', value: `${dollars(spike.threshold)} (${formatHundredths(rule.multipleHundredths)}x usual, at least ${dollars(rule.minSpend)})` },
  ]
  return {
    subject,
    facts,
    text: [subject, '', ...facts.map((f) => `${f.label}: ${f.value}`)].join('\n'),
    payload: {
      id: spike.id,
      type: 'spend.unusual',
      rule: { id: rule.id, name: rule.name, per: rule.per, multiple: Number(formatHundredths(rule.multipleHundredths)), minSpendUsd: usdToNumber(rule.minSpend), baselineDays: rule.baselineDays },
      botId: spike.botId,
      model: spike.model === '' ? null : spike.model,
      hourStart: spike.hour.toISOString(),
      hourEnd: new Date(spike.hour.getTime() + HOUR_MS).toISOString(),
      partial: spike.partial,
      spentUsd: usdToNumber(spike.spent),
      baselineUsd: usdToNumber(spike.baseline),
      thresholdUsd: usdToNumber(spike.threshold),
      ratio,
      createdAt: spike.createdAt.toISOString(),
      message: subject,
    },
  }
}

export interface SpendWatchOptions {
  /** Every rule is evaluated this often (and rules changed on other instances reloaded). */
  intervalMs: number
  /** Quiet time after a commit in the current or previous hour before evaluating. */
  debounceMs: number
  log: FastifyBaseLogger
  clock?: () => Date
}

/**
 * Evaluates the rules on a timer and shortly after commits of recent usage, one evaluation at a
 * time per instance; spikes are recorded once across instances (recordSpikes) and delivered by
 * the budget alerts' DeliveryWorker, to which this is an OutboxSource.
 */
export class SpendWatch implements OutboxSource {
  readonly source = 'spend' as const
  private rules: SpendAlertRule[] = []
  /** Keys of spikes known to be stored, so later evaluations do not insert them again. */
  private readonly known = new Set<string>()
  private timer: NodeJS.Timeout | null = null
  private debounce: NodeJS.Timeout | null = null
  /** The last evaluation queued: evaluations run one at a time, in order. */
  private tail: Promise<void> = Promise.resolve()
  /** Real time (not the injectable clock) of the last evaluation's start. */
  private lastRunAt = 0
  private closed = false
  readonly clock: () => Date

  constructor(
    private readonly database: Database,
    private readonly delivery: DeliveryWorker,
    private readonly opts: SpendWatchOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date())
    delivery.addSource(this)
  }

  async start(): Promise<void> {
    await this.reload()
    this.evaluateSoon(0)
    this.scheduleTick()
  }

  /** The WriteQueue's onCommitted hook: synchronous, no I/O. */
  readonly onCommitted = (events: CommittedEvent[]): void => {
    if (this.closed || !this.rules.some((r) => r.enabled)) return
    const since = Math.floor(this.clock().getTime() / HOUR_MS) * HOUR_MS - HOUR_MS
    const bots = new Set(this.rules.map((r) => r.scope.botId))
    if (events.some((e) => e.createdAt.getTime() >= since && (bots.has(null) || bots.has(e.botId)))) this.evaluateSoon(this.opts.debounceMs)
  }

  /** A rule was created or deleted through this instance (others reload at their next tick). */
  changed(): void {
    // Queued like an evaluation, so any evaluation asked for after this sees the change.
    this.tail = this.tail
      .then(() => this.reload())
      .then(() => this.evaluateSoon(0))
      .catch((err: unknown) => this.opts.log.warn({ err }, 'reloading spend alert rules failed'))
  }

  /** Evaluates every enabled rule after any evaluation in flight; resolves when done (timer, commits, tests). */
  evaluate(): Promise<void> {
    const next = this.tail
      .then(() => (this.closed ? undefined : this.run()))
      .catch((err: unknown) => this.opts.log.warn({ err }, 'spend alert evaluation failed; the next commit or tick retries'))
    this.tail = next
    return next
  }

  async resolve(alertIds: string[]): Promise<Map<string, OutboxMessage>> {
    const found = new Map<string, OutboxMessage>()
    for (const { spike, rule } of await spikesWithRules(this.database, alertIds)) {
      if (rule !== null) found.set(spike.id, { channels: rule.channels, message: composeSpike(spike, rule), log: { spendAlertId: rule.id } })
    }
    return found
  }

  async stop(): Promise<void> {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    if (this.debounce) clearTimeout(this.debounce)
    await this.tail
  }

  private async reload(): Promise<void> {
    this.rules = await listSpendAlertRules(this.database)
  }

  private evaluateSoon(delayMs: number): void {
    if (this.closed || this.debounce) return
    // Busy ingest commits all the time: evaluations it triggers are spaced, the timer's are not.
    const wait = Math.max(delayMs, this.lastRunAt + COMMIT_EVALUATION_GAP_MS - Date.now())
    this.debounce = setTimeout(() => {
      this.debounce = null
      void this.evaluate()
    }, wait)
    this.debounce.unref()
  }

  private scheduleTick(): void {
    if (this.closed) return
    this.timer = setTimeout(() => {
      this.timer = null
      void this.reload()
        .then(() => this.evaluate())
        .catch((err: unknown) => this.opts.log.warn({ err }, 'reloading spend alert rules failed'))
        .finally(() => this.scheduleTick())
    }, this.opts.intervalMs)
    this.timer.unref()
  }

  private async run(): Promise<void> {
    this.lastRunAt = Date.now()
    const rules = this.rules.filter((r) => r.enabled)
    if (rules.length === 0 || this.closed) return
    const currentHour = Math.floor(this.clock().getTime() / HOUR_MS) * HOUR_MS
    for (const key of this.known) if (Date.parse(key.slice(key.lastIndexOf('\u0000') + 1)) < currentHour - 2 * HOUR_MS) this.known.delete(key)
    const candidates = findSpikes(await seriesSpend(this.database, rules, currentHour), currentHour).filter((c) => !this.known.has(spikeKey(c)))
    if (candidates.length === 0) return
    const recorded = await recordSpikes(this.database, candidates)
    for (const c of candidates) this.known.add(spikeKey(c))
    for (const a of recorded) this.opts.log.info({ spikeId: a.id, spendAlertId: a.ruleId }, 'unusual spend alert fired')
    if (recorded.some((a) => a.deliveries > 0)) this.delivery.kick()
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's unusual-spend watcher (tests evaluate it at a moment they choose). */
    spendWatch: SpendWatch
  }
}
