import fp from 'fastify-plugin'

/** Echoes the request id (see src/lib/request-id.ts) so a caller can quote it when reporting a problem. */
export const requestIdHeader = fp(async (app) => {
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
})
