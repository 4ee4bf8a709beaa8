import cors from '@fastify/cors'
import fp from 'fastify-plugin'

/** CORS for the origins in CORS_ORIGINS ('*' for any; none by default). */
export const corsOrigins = fp<{ origins: string[] }>(async (app, { origins }) => {
  await app.register(cors, {
    origin: origins.includes('*') ? true : origins.length > 0 ? origins : false,
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
  })
})
