import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { assertMayWrite, boundBot } from '../auth/plugin.js'
import { ErrorResponse, Errors } from '../errors.js'
import { checkEventInput, EventRejected, normalizeEvent, type PriceEvent } from './ingest.js'
import type { WriteQueue } from './write-queue.js'
import { UsageEvent } from '../lib/usage-event.js'
import { BatchBody, BatchResponse, UsageEventInput, type BatchItemResult } from './schemas.js'

export interface UsageRoutesOptions {
  config: Config
  writeQueue: WriteQueue
  priceEvent: PriceEvent
}

const errors = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  413: ErrorResponse,
  429: ErrorResponse,
  503: ErrorResponse,
}

/** The error of an event the database refused, logged in one line: the cause and the route, never the SQL text or the values. */
function refused(request: FastifyRequest, field: string, sqlState: string): FastifyError {
  const error = new Errors.unstorableEvent(field, sqlState)
  request.log.warn({ code: error.code, sqlState, route: request.routeOptions.url, field }, 'the database refused an event')
  return error
}

export const usageRoutes: FastifyPluginAsyncTypebox<UsageRoutesOptions> = async (app, opts) => {
  const { config, writeQueue, priceEvent } = opts
  const limits = { maxFutureSkewMs: config.maxFutureSkewMs }

  app.post(
    '/api/usage',
    {
      config: { scope: 'ingest' },
      // Shed before the body is read and validated: under overload a refusal must cost little,
      // or refusing takes the CPU the admitted writes need.
      onRequest: async () => {
        if (!writeQueue.wouldAdmit(1)) throw new Errors.overloaded(1)
      },
      schema: {
        tags: ['usage'],
        summary: 'Record one model call',
        description:
          'Stores one usage event and returns the stored record. Re-sending the same (botId, id) returns 200 with the stored record and changes no total. ' +
          '422 UNSTORABLE_EVENT: the database refused the values (do not retry unchanged); 503: the infrastructure failed (retry).',
        body: UsageEventInput,
        response: {
          201: { ...UsageEvent, description: 'Stored: the new record' },
          200: { ...UsageEvent, description: 'Duplicate: (botId, id) was already stored; the stored record, nothing changed' },
          ...errors,
          422: ErrorResponse,
        },
      },
    },
    async (request, reply) => {
      let event
      try {
        event = normalizeEvent(request.body, { root: 'body', botId: boundBot(request), now: new Date(), limits, price: priceEvent })
      } catch (err) {
        if (err instanceof EventRejected) throw new Errors.validation(err.message)
        throw err
      }
      assertMayWrite(request, event.botId)
      const [result] = await writeQueue.write([event])
      if (result.status === 'refused') {
        throw refused(request, 'body', result.sqlState)
      }
      if (!result.event) throw new Errors.internal()
      return reply.code(result.status === 'created' ? 201 : 200).send(result.event)
    },
  )

  app.post(
    '/api/usage/batch',
    {
      config: { scope: 'ingest' },
      schema: {
        tags: ['usage'],
        summary: 'Record up to MAX_BATCH_SIZE model calls in one request',
        description:
          'Each event is validated on its own: an invalid event rejects only itself (status "invalid" with the error), ' +
          'all valid events are stored in one statement. Nothing is half-written: the batch commits as a whole or not at all. ' +
          'An event the database still refuses is "invalid" with code UNSTORABLE_EVENT and the others are stored.',
        body: { ...BatchBody, properties: { events: { ...BatchBody.properties.events, maxItems: config.maxBatchSize } } },
        response: { 200: BatchResponse, ...errors },
      },
    },
    async (request) => {
      const now = new Date()
      const botId = boundBot(request)
      const results: BatchItemResult[] = new Array(request.body.events.length)
      const valid: { index: number; event: ReturnType<typeof normalizeEvent> }[] = []
      request.body.events.forEach((item, index) => {
        const root = `body.events[${index}]`
        try {
          const input = checkEventInput(item, root)
          valid.push({ index, event: normalizeEvent(input, { root, botId, now, limits, price: priceEvent }) })
        } catch (err) {
          if (!(err instanceof EventRejected)) throw err
          const error = new Errors.validation(err.message)
          results[index] = { index, status: 'invalid', error: { code: error.code, message: error.message } }
        }
      })
      // A key bound to one bot writing for another is refused as a whole, before anything is stored.
      for (const v of valid) assertMayWrite(request, v.event.botId)
      const stored = valid.length > 0 ? await writeQueue.write(valid.map((v) => v.event), { withRecords: false }) : []
      stored.forEach((r, i) => {
        const index = valid[i].index
        if (r.status === 'refused') {
          const error = refused(request, `body.events[${index}]`, r.sqlState)
          results[index] = { index, status: 'invalid', id: r.id, error: { code: error.code, message: error.message } }
        } else {
          results[index] = { index, status: r.status, id: r.id }
        }
      })
      const created = stored.filter((r) => r.status === 'created').length
      const duplicates = stored.filter((r) => r.status === 'duplicate').length
      return { results, created, duplicates, invalid: results.length - created - duplicates }
    },
  )
}
