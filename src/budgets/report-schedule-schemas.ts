import { Type, type Static } from 'typebox'
import { ReportMeasures } from '../analytics/reader.js'
import { BotId } from '../lib/schemas.js'
import { TimeZoneName } from '../lib/time-zone.js'
import { ChannelsInfo, ChannelsInput, DeliveryInfo } from './schemas.js'

/** Wire schemas of scheduled reports (docs/budgets.md, "Scheduled reports"). */

export const REPORT_PERIODS = ['week', 'month'] as const
export const DEFAULT_SEND_HOUR = 9
const Instant = (description?: string) => Type.String({ format: 'date-time', description })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T, description?: string) =>
  Type.Union([t, Type.Null()], description === undefined ? {} : { description })

export const CreateReportScheduleBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    period: Type.Enum(REPORT_PERIODS, { description: 'week: ISO weeks (Monday to Sunday); month: calendar months; both in timeZone' }),
    timeZone: Type.Optional(TimeZoneName({ description: 'IANA time zone of the periods and of sendHour (default BUDGET_TIMEZONE)' })),
    scope: Type.Optional(
      Type.Object({ botId: Type.Optional(BotId) }, { additionalProperties: false, description: '{} (default) reports every bot; or one bot' }),
    ),
    sendHour: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 23,
        description: `Local hour of the first day of a period at which the previous period's report is sent (default ${DEFAULT_SEND_HOUR})`,
      }),
    ),
    channels: ChannelsInput,
    enabled: Type.Optional(Type.Boolean({ description: 'Disabled schedules send nothing (default true)' })),
  },
  { additionalProperties: false },
)
export type CreateReportScheduleBody = Static<typeof CreateReportScheduleBody>

const { name, sendHour, enabled } = CreateReportScheduleBody.properties
export const UpdateReportScheduleBody = Type.Object(
  { name, sendHour, enabled },
  { additionalProperties: false, description: 'Given fields replace the stored ones. Period, time zone, scope and channels are fixed: create another schedule to change them.' },
)

export const ReportScheduleInfo = Type.Object({
  id: Type.String(),
  name: Type.String(),
  period: Type.Enum(REPORT_PERIODS),
  timeZone: Type.String(),
  scope: Type.Object({ botId: Nullable(Type.String()) }),
  sendHour: Type.Integer(),
  enabled: Type.Boolean(),
  channels: ChannelsInfo,
  nextSendAt: Instant('When the next report is due (the current period, sent at sendHour of the next period\'s first day)'),
  createdAt: Instant(),
  updatedAt: Instant(),
})
export type ReportScheduleInfo = Static<typeof ReportScheduleInfo>

export const ReportScheduleIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

const CostLine = { calls: Type.Integer(), cost: Type.Number({ description: 'USD' }), costExact: Type.String() }
const Change = Nullable(Type.Number(), 'Relative change against the previous period (0.25 is +25%); null when the previous period had none')

/** A report as it is sent: the same rows and totals as GET /api/reports/monthly for the period. */
export const ScheduledReport = Type.Object({
  scheduleId: Type.String(),
  name: Type.String(),
  period: Type.Enum(REPORT_PERIODS),
  timeZone: Type.String(),
  botId: Nullable(Type.String(), 'The one bot reported, or null for all'),
  label: Type.String({ description: 'YYYY-MM for a month, YYYY-MM-DD..YYYY-MM-DD (Monday to Sunday) for a week' }),
  from: Instant('First instant of the period'),
  to: Instant('First instant after it'),
  rows: Type.Array(Type.Object({ botId: Type.String(), provider: Type.String(), model: Type.String(), ...ReportMeasures }), {
    description: 'Per bot, provider and model, as in GET /api/reports/monthly',
  }),
  totals: Type.Object(ReportMeasures),
  byModel: Type.Array(Type.Object({ provider: Type.String(), model: Type.String(), ...CostLine }), { description: 'Highest cost first, at most 10' }),
  byBot: Type.Array(Type.Object({ botId: Type.String(), ...CostLine }), { description: 'Highest cost first, at most 10' }),
  topErrors: Type.Array(Type.Object({ message: Nullable(Type.String()), count: Type.Integer() }), { description: 'Most frequent failure messages, at most 5' }),
  previous: Type.Object({ from: Instant(), to: Instant(), totals: Type.Object(ReportMeasures) }),
  change: Type.Object({ calls: Change, cost: Change, failures: Change }),
})
export type ScheduledReport = Static<typeof ScheduledReport>

export const ReportPeriodChoice = Type.Object(
  {
    period: Type.Optional(
      Type.Enum(['previous', 'current'] as const, { description: 'previous (default): the last complete period; current: the period so far' }),
    ),
  },
  { additionalProperties: false },
)

export const ReportPreview = Type.Object({
  report: ScheduledReport,
  subject: Type.String({ description: 'The email subject and the first line of every message' }),
  text: Type.String({ description: 'The plain text sent by email and Telegram' }),
})

export const ReportSendInfo = Type.Object({
  id: Type.String({ description: 'Also the X-Alert-Id and the webhook body id of its deliveries' }),
  scheduleId: Type.String(),
  manual: Type.Boolean({ description: 'Sent through POST .../send rather than by the schedule' }),
  from: Instant(),
  to: Instant(),
  createdAt: Instant(),
  deliveries: Type.Array(DeliveryInfo),
})

export const ReportSendsResponse = Type.Object({ sends: Type.Array(ReportSendInfo) })
