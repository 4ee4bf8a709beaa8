import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Database } from '../db/connect.js'
import { ErrorResponse, Errors } from '../errors.js'

export const healthRoutes: FastifyPluginAsyncTypebox<{ database: Database }> = async (app, { database }) => {
  app.get(
    '/healthz',
    { schema: { tags: ['health'], summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  )
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'The database answers (503 when not)',
        response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: ErrorResponse },
      },
    },
    async () => {
      try {
        await database.ping()
      } catch {
        throw new Errors.databaseUnavailable()
      }
      return { status: 'ready' as const }
    },
  )
}
