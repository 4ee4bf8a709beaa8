import { Type, type Static, type TInteger, type TNumber, type TSchema, type TString } from 'typebox'
import { REPORT_MEASURES, REPORTED_MEASURES, type CoreMeasureName, type ReportMeasureName } from '../db/measures.js'
import { DATE_OR_TIMESTAMP_FORMAT, SUPPORTED_DATES, YEAR_MONTH_FORMAT } from '../lib/time.js'
import { TimeZoneName } from '../lib/time-zone.js'
import { BotId, Model, Provider, RequestType, TokenSums } from '../lib/schemas.js'
import { UsageEvent } from '../lib/usage-event.js'

/**
 * Wire schemas of the analytics and reports endpoints. Types used by the handlers come from
 * these with Static<>.
 */

export const INTERVALS = ['hour', 'day', 'week', 'month'] as const
export const TIMESERIES_GROUPS = ['model', 'provider', 'botId', 'requestType'] as const
export const BREAKDOWN_SORTS = ['cost', 'calls', 'failures', 'totalTokens', 'inputTokens', 'outputTokens'] as const

const TimeZone = TimeZoneName({
  default: 'UTC',
  description: 'IANA time zone (e.g. Europe/Berlin) for day, week and month boundaries and for date-only startDate/endDate',
})

const DateParam = (description: string) =>
  Type.String({
    maxLength: 40,
    format: DATE_OR_TIMESTAMP_FORMAT,
    description: `${description}: YYYY-MM-DD (UTC) or ISO 8601 timestamp, ${SUPPORTED_DATES}`,
  })

/** Filters shared by every read endpoint. */
export const UsageFilters = Type.Object({
  botId: Type.Optional(BotId),
  model: Type.Optional(Model),
  provider: Type.Optional(Provider),
  requestType: Type.Optional(RequestType),
  success: Type.Optional(Type.Boolean()),
  startDate: Type.Optional(DateParam('Inclusive start')),
  endDate: Type.Optional(DateParam('Inclusive end; a date-only value includes that whole UTC day')),
})
export type UsageFilters = Static<typeof UsageFilters>

export const StatsQuery = Type.Object(
  {
    ...UsageFilters.properties,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 20, description: 'How many recentUsage events' })),
  },
  { additionalProperties: false },
)
export type StatsQuery = Static<typeof StatsQuery>

/** GET /api/usage (the seed-compatible stats). */
const UsdNumber = Type.Number({ description: 'USD' })

export const StatsRow = Type.Object({
  model: Type.String(),
  provider: Type.String(),
  _sum: Type.Object({ ...TokenSums, estimatedCost: UsdNumber }),
  _count: Type.Object({ id: Type.Integer(), failed: Type.Integer() }),
  unpriced: Type.Object(
    { events: Type.Integer(), inputTokens: Type.Integer(), outputTokens: Type.Integer() },
    { description: 'Events the catalog could not price; their cost is the reported one or missing' },
  ),
})
export type StatsRow = Static<typeof StatsRow>

export const StatsResponse = Type.Object({
  stats: Type.Array(StatsRow),
  recentUsage: Type.Array(UsageEvent),
  totalCost: UsdNumber,
})
export type StatsResponse = Static<typeof StatsResponse>

/** The filters of the analytics endpoints: UsageFilters with local-calendar dates and a time zone. */
const Filters = {
  ...UsageFilters.properties,
  startDate: Type.Optional(
    Type.String({ maxLength: 40, format: DATE_OR_TIMESTAMP_FORMAT, description: 'Inclusive start: YYYY-MM-DD (local midnight in tz) or ISO 8601 timestamp; default endDate minus 30 days' }),
  ),
  endDate: Type.Optional(
    Type.String({ maxLength: 40, format: DATE_OR_TIMESTAMP_FORMAT, description: 'Inclusive end: YYYY-MM-DD (the whole local day in tz) or ISO 8601 timestamp; default now' }),
  ),
  tz: Type.Optional(TimeZone),
}

const Instant = (description: string) => Type.String({ format: 'date-time', description })
const Window = {
  from: Instant('First instant covered'),
  to: Instant('First instant no longer covered (exclusive)'),
}

const Usd = (description: string) => Type.Number({ description: `${description}, USD` })
const NullableNumber = (description: string) => Type.Union([Type.Number(), Type.Null()], { description })

/** The reported measures of the measure table (db/measures.ts) after calls and failures, in its order. */
const measureProperties = Object.fromEntries(
  REPORTED_MEASURES.filter((m) => m.name !== 'calls' && m.name !== 'failures').map((m) => {
    const options = m.description === undefined ? {} : { description: m.description }
    return [m.name, m.kind === 'usd' ? Type.Number(options) : Type.Integer(options)]
  }),
) as Record<Exclude<CoreMeasureName, 'calls' | 'failures' | 'cost'>, TInteger> & { cost: TNumber }

export const UsageTotals = Type.Object({
  calls: Type.Integer(),
  successes: Type.Integer(),
  failures: Type.Integer(),
  successRate: NullableNumber('successes / calls, 0..1; null without calls'),
  ...measureProperties,
  avgLatencyMs: NullableNumber('Mean latency of the calls that reported one'),
})
export type UsageTotals = Static<typeof UsageTotals>

const LATENCY_DESCRIPTION =
  'Percentiles are estimated from a fixed-bucket histogram: off by at most one bucket width ' +
  '(<= 50 ms below 100 ms, <= 26% of the value from 100 ms to 100 s). See docs/analytics.md.'

export const Latency = Type.Object(
  {
    samples: Type.Integer({ description: 'Calls that reported a latency' }),
    avgMs: NullableNumber('Exact mean'),
    maxMs: Type.Union([Type.Integer(), Type.Null()]),
    p50Ms: Type.Union([Type.Integer(), Type.Null()]),
    p95Ms: Type.Union([Type.Integer(), Type.Null()]),
    p99Ms: Type.Union([Type.Integer(), Type.Null()]),
  },
  { description: LATENCY_DESCRIPTION },
)

const HistogramBucket = Type.Object({
  lowerMs: Type.Integer(),
  upperMs: Type.Union([Type.Integer(), Type.Null()], { description: 'Exclusive; null for the open-ended last bucket' }),
  count: Type.Integer(),
})

// ---- timeseries --------------------------------------------------------------------------------

export const TimeseriesQuery = Type.Object(
  {
    ...Filters,
    interval: Type.Optional(Type.Enum(INTERVALS, { default: 'day', description: 'Bucket size; weeks start on Monday' })),
    groupBy: Type.Optional(Type.Enum(TIMESERIES_GROUPS, { description: 'Also return one series per value of this dimension' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10, description: 'Series returned with groupBy: the highest-cost groups' })),
    percentiles: Type.Optional(
      Type.Boolean({ default: false, description: 'Also return latency percentiles (p50/p95/p99) for every bucket of `buckets`' }),
    ),
  },
  { additionalProperties: false },
)
export type TimeseriesQuery = Static<typeof TimeseriesQuery>

const Bucket = Type.Object({ start: Instant('Bucket start (local midnight etc. in tz)'), ...UsageTotals.properties })
const BucketWithLatency = Type.Object({
  ...Bucket.properties,
  latency: Type.Optional(Type.Object({ ...Latency.properties }, { description: `With percentiles=true. ${LATENCY_DESCRIPTION}` })),
})

export const TimeseriesResponse = Type.Object({
  ...Window,
  interval: Type.Enum(INTERVALS),
  tz: Type.String(),
  groupBy: Type.Union([Type.Enum(TIMESERIES_GROUPS), Type.Null()]),
  buckets: Type.Array(BucketWithLatency, { description: 'Every bucket of the range, empty ones with zeros' }),
  series: Type.Array(
    Type.Object({ group: Type.String(), totals: UsageTotals, buckets: Type.Array(Bucket) }),
    { description: 'With groupBy: one zero-filled series per group, highest cost first' },
  ),
  otherGroups: Type.Integer({ description: 'Groups left out by limit' }),
})

// ---- summary ----------------------------------------------------------------------------------

export const SummaryQuery = Type.Object(
  {
    ...Filters,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 20, description: 'Entries in byModel and byBot' })),
  },
  { additionalProperties: false },
)
export type SummaryQuery = Static<typeof SummaryQuery>

const Change = NullableNumber('(current - previous) / previous; null when previous is 0')

export const SummaryResponse = Type.Object({
  ...Window,
  totals: UsageTotals,
  latency: Type.Object({ ...Latency.properties, histogram: Type.Array(HistogramBucket, { description: 'Non-empty buckets' }) }, { description: LATENCY_DESCRIPTION }),
  byModel: Type.Array(Type.Object({ model: Type.String(), provider: Type.String(), ...UsageTotals.properties }), { description: 'Highest cost first' }),
  byBot: Type.Array(Type.Object({ botId: Type.String(), ...UsageTotals.properties }), { description: 'Highest cost first' }),
  previous: Type.Object({ ...Window, totals: UsageTotals }, { description: 'The equal-length period just before' }),
  change: Type.Object({
    calls: Change,
    failures: Change,
    cost: Change,
    totalTokens: Change,
    successRate: NullableNumber('current - previous success rate (fraction points); null when either has no calls'),
  }),
})

// ---- breakdown --------------------------------------------------------------------------------

export const BreakdownQuery = Type.Object(
  {
    ...Filters,
    groupBy: Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'One or two comma-separated dimensions: model, provider, botId, requestType, serviceTier (read from raw events), metadata.<key> (e.g. metadata.userId)',
    }),
    sort: Type.Optional(Type.Enum(BREAKDOWN_SORTS, { default: 'cost' })),
    order: Type.Optional(Type.Enum(['asc', 'desc'] as const, { default: 'desc' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  },
  { additionalProperties: false },
)
export type BreakdownQuery = Static<typeof BreakdownQuery>

export const BreakdownResponse = Type.Object({
  ...Window,
  groupBy: Type.Array(Type.String()),
  rows: Type.Array(
    Type.Object({
      group: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()]), {
        description: 'Dimension -> value; null where an event lacks the metadata key (or for the other values, see other)',
      }),
      other: Type.Optional(
        Type.Boolean({
          description:
            'True on the row of the values of a declared metadata key (METADATA_ROLLUP_KEYS) past its bound (METADATA_ROLLUP_MAX_VALUES): ' +
            'every event of those values, its metadata group shown as null',
        }),
      ),
      ...UsageTotals.properties,
      latency: Latency,
    }),
  ),
  totals: UsageTotals,
  groupCount: Type.Integer({ description: 'Groups before limit' }),
  source: Type.Enum(['rollups', 'raw'] as const, {
    description:
      "Where the figures come from: 'rollups' (whole hours and days, raw events only at the edges) or 'raw' (raw events " +
      'beyond the edges: a metadata.<key> dimension of a key not declared in METADATA_ROLLUP_KEYS, the part of a range ' +
      'before the key was declared, or filters its rollup lacks; that raw part is limited to METADATA_RAW_MAX_DAYS)',
  }),
})

// ---- errors and events ------------------------------------------------------------------------

const Cursor = Type.String({ minLength: 1, maxLength: 600, description: 'nextCursor of the previous page' })

const { success: _success, ...FiltersWithoutSuccess } = Filters

export const ErrorsQuery = Type.Object(
  {
    ...FiltersWithoutSuccess,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Cursor),
    top: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 10, description: 'How many most frequent messages' })),
  },
  { additionalProperties: false },
)
export type ErrorsQuery = Static<typeof ErrorsQuery>

export const ErrorsResponse = Type.Object({
  ...Window,
  failures: Type.Integer({ description: 'All failures in the range' }),
  errors: Type.Array(UsageEvent, { description: 'Newest first' }),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  topMessages: Type.Array(
    Type.Object({ message: Type.Union([Type.String(), Type.Null()]), count: Type.Integer(), lastSeen: Instant('Newest occurrence') }),
  ),
})

export const EventsQuery = Type.Object(
  {
    ...Filters,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
)
export type EventsQuery = Static<typeof EventsQuery>

export const EventsResponse = Type.Object({
  ...Window,
  events: Type.Array(UsageEvent, { description: 'Newest first' }),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: 'Pass as cursor for the next page; pages list only events received before the first page was read',
  }),
})

// ---- export and reports -----------------------------------------------------------------------

export const ExportQuery = Type.Object(
  {
    ...Filters,
    format: Type.Optional(Type.Enum(['csv', 'jsonl'] as const, { default: 'csv' })),
  },
  { additionalProperties: false },
)
export type ExportQuery = Static<typeof ExportQuery>

export const MonthlyQuery = Type.Object(
  {
    month: Type.Optional(Type.String({ format: YEAR_MONTH_FORMAT, maxLength: 7, description: 'YYYY-MM; default the current month in tz' })),
    tz: Type.Optional(TimeZone),
    format: Type.Optional(Type.Enum(['json', 'csv'] as const, { default: 'json' })),
    botId: UsageFilters.properties.botId,
    provider: UsageFilters.properties.provider,
    model: UsageFilters.properties.model,
    requestType: UsageFilters.properties.requestType,
  },
  { additionalProperties: false },
)
export type MonthlyQuery = Static<typeof MonthlyQuery>

/** The monthly report's measures (db/measures.ts), the cost also as an exact decimal string. */
export const ReportMeasures = Object.fromEntries(
  REPORT_MEASURES.flatMap((m): [string, TSchema][] =>
    m.kind === 'usd'
      ? [
          [m.name, Usd('Exact sum')],
          [`${m.name}Exact`, Type.String({ description: 'The same cost as an exact decimal string' })],
        ]
      : [[m.name, Type.Integer(m.description === undefined ? {} : { description: m.description })]],
  ),
) as Record<Exclude<ReportMeasureName, 'cost'>, TInteger> & { cost: TNumber; costExact: TString }

export const MonthlyReport = Type.Object({
  month: Type.String(),
  tz: Type.String(),
  ...Window,
  rows: Type.Array(Type.Object({ botId: Type.String(), provider: Type.String(), model: Type.String(), ...ReportMeasures })),
  totals: Type.Object(ReportMeasures),
})
export type MonthlyReport = Static<typeof MonthlyReport>
