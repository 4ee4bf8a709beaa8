import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Database } from '../db/connect.js'
import { ErrorResponse, Errors } from '../errors.js'
import { createKey, listKeys, revokeKey, toKeyInfo } from './keys.js'
import { assertMayCreateKey, type Authenticator } from './plugin.js'
import { ApiKeyInfo, CreatedKey, CreateKeyBody, KeyIdParams, KeySelf, SCOPES } from './schemas.js'

const authErrors = { 401: ErrorResponse, 403: ErrorResponse, 429: ErrorResponse }

export const keyRoutes: FastifyPluginAsyncTypebox<{ database: Database; auth: Authenticator }> = async (app, { database, auth }) => {
  app.post(
    '/api/keys',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'Create an API key',
        description:
          'Scopes: ingest (write usage), read (query usage, prices, reports), admin (everything). A key bound to botId only writes and reads that bot, ' +
          'and cannot hold admin (400). The secret is returned once.',
        body: CreateKeyBody,
        response: { 201: CreatedKey, 400: ErrorResponse, ...authErrors },
      },
    },
    async (request, reply) => {
      assertMayCreateKey(request, request.body)
      const { key, record } = await createKey(database, request.body)
      auth.invalidate()
      return reply.code(201).send({ ...toKeyInfo(record), key })
    },
  )

  app.get(
    '/api/keys',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'List API keys (never their secrets)',
        response: { 200: Type.Object({ keys: Type.Array(ApiKeyInfo) }), ...authErrors },
      },
    },
    async () => {
      await auth.flushLastUsed()
      return { keys: (await listKeys(database)).map(toKeyInfo) }
    },
  )

  app.delete(
    '/api/keys/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'Revoke an API key (it stops working at once)',
        params: KeyIdParams,
        response: { 200: ApiKeyInfo, 404: ErrorResponse, ...authErrors },
      },
    },
    async (request) => {
      const revoked = await revokeKey(database, request.params.id)
      if (!revoked) throw new Errors.notFound(`No API key with id '${request.params.id}'`)
      auth.invalidate()
      return toKeyInfo(revoked)
    },
  )

  app.get(
    '/api/keys/self',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['keys'],
        summary: "The calling key's scopes and bot binding (never its secret)",
        description: 'Lets a client such as the dashboard say which bot a bound key is restricted to.',
        response: { 200: KeySelf, ...authErrors },
      },
    },
    async (request) => {
      const principal = request.principal
      return {
        id: principal?.keyId ?? null,
        scopes: SCOPES.filter((s) => principal?.scopes.has(s) ?? false),
        botId: principal?.botId ?? null,
      }
    },
  )
}
