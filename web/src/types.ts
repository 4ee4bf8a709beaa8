/** The parts of the API's answers the dashboard reads (see openapi.yaml for the full schemas). */

export interface Totals {
  calls: number
  successes: number
  failures: number
  successRate: number | null
  inputTokens: number
  outputTokens: number
  totalTokens: number
  cacheReadTokens: number
  cacheWriteTokens: number
  reasoningTokens: number
  cost: number
  unpricedCalls: number
  avgLatencyMs: number | null
}

export interface Latency {
  samples: number
  avgMs: number | null
  maxMs: number | null
  p50Ms: number | null
  p95Ms: number | null
  p99Ms: number | null
}

export interface Bucket extends Totals {
  start: string
  latency?: Latency
}

export interface Timeseries {
  from: string
  to: string
  interval: 'hour' | 'day' | 'week' | 'month'
  tz: string
  buckets: Bucket[]
  series: { group: string; totals: Totals; buckets: Bucket[] }[]
  otherGroups: number
}

export interface Summary {
  from: string
  to: string
  totals: Totals
  latency: Latency
  byModel: (Totals & { model: string; provider: string })[]
  byBot: (Totals & { botId: string })[]
  previous: { from: string; to: string; totals: Totals }
  change: { calls: number | null; failures: number | null; cost: number | null; totalTokens: number | null; successRate: number | null }
}

export interface Breakdown {
  groupBy: string[]
  rows: (Totals & { group: Record<string, string | null>; latency: Latency })[]
  totals: Totals
  groupCount: number
}

export interface UsageEvent {
  id: string
  botId: string
  model: string
  provider: string
  requestType: string
  success: boolean
  errorMessage: string | null
  inputTokens: number
  outputTokens: number
  totalTokens: number
  latencyMs: number | null
  estimatedCost: number | null
  priced: boolean
  metadata: Record<string, unknown> | null
  createdAt: string
}

export interface EventsPage {
  events: UsageEvent[]
  nextCursor: string | null
}

export interface ErrorsPage {
  failures: number
  errors: UsageEvent[]
  nextCursor: string | null
  topMessages: { message: string | null; count: number; lastSeen: string }[]
}

export interface KeySelf {
  id: string | null
  scopes: string[]
  botId: string | null
}

export interface BudgetInfo {
  id: string
  name: string
  period: string
  limitUsd: number
  enabled: boolean
  scope: { botId: string | null; provider: string | null; model: string | null }
}

export interface BudgetStatus {
  budgetId: string
  name: string
  period: string
  timeZone: string
  periodStart: string
  periodEnd: string
  limitUsd: number
  spentUsd: number
  percent: number
  projectedUsd: number | null
  projectedOverrun: boolean
  thresholds: { percent: number; crossed: boolean; alertedAt: string | null }[]
}

export interface AlertInfo {
  id: string
  budgetId: string
  budgetName: string | null
  kind: 'threshold' | 'projected'
  threshold: number
  spentUsd: number
  limitUsd: number
  projectedUsd: number | null
  createdAt: string
  deliveries: { channel: string; status: string }[]
}
