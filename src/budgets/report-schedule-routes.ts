import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Database } from '../db/connect.js'
import { ErrorResponse, Errors } from '../errors.js'
import { uuidv7 } from '../lib/uuidv7.js'
import { defineChannels, timeZoneFrom, type DefinitionContext } from './definition.js'
import { deliveriesOf } from './delivery-store.js'
import { periodWindow } from './periods.js'
import { buildReport, composeReport, previousPeriod } from './report-content.js'
import { nextSendAt, type ReportScheduler } from './report-schedule.js'
import {
  CreateReportScheduleBody,
  DEFAULT_SEND_HOUR,
  ReportPeriodChoice,
  ReportPreview,
  ReportScheduleIdParams,
  ReportScheduleInfo,
  ReportSendsResponse,
  UpdateReportScheduleBody,
  type ReportScheduleInfo as ReportScheduleInfoType,
} from './report-schedule-schemas.js'
import {
  deleteReportSchedule,
  findReportSchedule,
  insertReportSchedule,
  listReportSchedules,
  listSends,
  updateReportSchedule,
  type ReportSchedule,
} from './report-schedule-store.js'
import { checkChannelDestinations, toChannelsInfo } from './routes.js'

export interface ReportScheduleRoutesOptions {
  database: Database
  scheduler: ReportScheduler
  definitions: DefinitionContext
  /** Where previews are computed (as GET /api/reports/monthly reads). */
  reads: Database
}

const authErrors = { 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse }

function toInfo(s: ReportSchedule, now: Date, revealedSecret: string | null = null): ReportScheduleInfoType {
  return {
    id: s.id,
    name: s.name,
    period: s.period,
    timeZone: s.timeZone,
    scope: { botId: s.botId },
    sendHour: s.sendHour,
    enabled: s.enabled,
    channels: toChannelsInfo(s.channels, revealedSecret),
    nextSendAt: nextSendAt(s, now).toISOString(),
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  }
}

async function scheduleOr404(database: Database, id: string): Promise<ReportSchedule> {
  const schedule = await findReportSchedule(database, id)
  if (!schedule) throw new Errors.notFound(`No report schedule with id '${id}'`)
  return schedule
}

/** The HTTP surface of scheduled reports (admin, like budgets). */
export const reportScheduleRoutes: FastifyPluginAsyncTypebox<ReportScheduleRoutesOptions> = async (app, opts) => {
  const { database, scheduler, definitions } = opts

  app.post(
    '/api/report-schedules',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Send a weekly or monthly usage report on a schedule',
        description:
          'Each period (ISO week or calendar month in timeZone) is reported once, at sendHour (local) of the next period\'s first day: ' +
          'calls, cost by model and bot, top errors and the change against the period before, with the same rows and totals as ' +
          'GET /api/reports/monthly. Channels as for budgets; a generated webhook secret is in this response only.',
        body: CreateReportScheduleBody,
        response: { 201: ReportScheduleInfo, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request, reply) => {
      const b = request.body
      await checkChannelDestinations(b.channels, definitions)
      const { channels, revealedSecret } = defineChannels(b.channels, definitions)
      if (Object.keys(channels).length === 0) throw new Errors.validation('body.channels must name at least one channel (webhook, email, telegram or slack)')
      const now = scheduler.clock()
      const timeZone = timeZoneFrom(b.timeZone ?? definitions.defaultTimeZone, 'body.timeZone')
      const botId = b.scope?.botId ?? null
      const schedule: ReportSchedule = {
        id: uuidv7(),
        name: b.name ?? `${b.period === 'week' ? 'Weekly' : 'Monthly'} usage${botId === null ? '' : ` of ${botId}`}`,
        period: b.period,
        timeZone,
        botId,
        sendHour: b.sendHour ?? DEFAULT_SEND_HOUR,
        channels,
        enabled: b.enabled ?? true,
        createdAt: now,
        updatedAt: now,
      }
      await insertReportSchedule(database, schedule)
      return reply.code(201).send(toInfo(schedule, now, revealedSecret))
    },
  )

  app.get(
    '/api/report-schedules',
    {
      config: { scope: 'admin' },
      schema: { tags: ['budgets'], summary: 'All report schedules', response: { 200: Type.Object({ reportSchedules: Type.Array(ReportScheduleInfo) }), ...authErrors } },
    },
    async () => {
      const now = scheduler.clock()
      return { reportSchedules: (await listReportSchedules(database)).map((s) => toInfo(s, now)) }
    },
  )

  app.get(
    '/api/report-schedules/:id',
    {
      config: { scope: 'admin' },
      schema: { tags: ['budgets'], summary: 'One report schedule', params: ReportScheduleIdParams, response: { 200: ReportScheduleInfo, 404: ErrorResponse, ...authErrors } },
    },
    async (request) => toInfo(await scheduleOr404(database, request.params.id), scheduler.clock()),
  )

  app.patch(
    '/api/report-schedules/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Change a schedule\'s name, send hour or enabled state',
        description: 'Periods already sent stay sent.',
        params: ReportScheduleIdParams,
        body: UpdateReportScheduleBody,
        response: { 200: ReportScheduleInfo, 400: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const existing = await scheduleOr404(database, request.params.id)
      const now = scheduler.clock()
      const b = request.body
      const schedule = { ...existing, name: b.name ?? existing.name, sendHour: b.sendHour ?? existing.sendHour, enabled: b.enabled ?? existing.enabled, updatedAt: now }
      if (!(await updateReportSchedule(database, schedule))) throw new Errors.notFound(`No report schedule with id '${schedule.id}'`)
      return toInfo(schedule, now)
    },
  )

  app.delete(
    '/api/report-schedules/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Delete a report schedule with its send history',
        params: ReportScheduleIdParams,
        response: { 200: Type.Object({ deleted: Type.String() }), 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      if (!(await deleteReportSchedule(database, request.params.id))) throw new Errors.notFound(`No report schedule with id '${request.params.id}'`)
      return { deleted: request.params.id }
    },
  )

  app.get(
    '/api/report-schedules/:id/preview',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'The report as it would be sent now, without sending it',
        params: ReportScheduleIdParams,
        querystring: ReportPeriodChoice,
        response: { 200: ReportPreview, 400: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const schedule = await scheduleOr404(database, request.params.id)
      const current = periodWindow(scheduler.clock(), schedule.period, schedule.timeZone)
      const window = request.query.period === 'current' ? current : previousPeriod(schedule, current)
      const report = await buildReport(opts.reads, schedule, window)
      const message = composeReport('preview', report, true)
      return { report, subject: message.subject, text: message.text }
    },
  )

  app.get(
    '/api/report-schedules/:id/sends',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['budgets'],
        summary: 'Reports a schedule sent, newest first, with delivery status per channel',
        params: ReportScheduleIdParams,
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })) }, { additionalProperties: false }),
        response: { 200: ReportSendsResponse, 400: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      await scheduleOr404(database, request.params.id)
      const sends = await listSends(database, request.params.id, request.query.limit ?? 50)
      const deliveries = await deliveriesOf(database, sends.map((s) => s.id))
      return {
        sends: sends.map((s) => ({
          id: s.id,
          scheduleId: s.scheduleId,
          manual: s.manual,
          from: s.periodStart.toISOString(),
          to: s.periodEnd.toISOString(),
          createdAt: s.createdAt.toISOString(),
          deliveries: deliveries.get(s.id) ?? [],
        })),
      }
    },
  )
}
