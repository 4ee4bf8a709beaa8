import helmet from 'helmet'
import fp from 'fastify-plugin'

/**
 * The Content-Security-Policy of every response. Swagger UI under /docs (its scripts, including
 * the initializer, are files served from /docs/static) and the dashboard load only same-origin
 * scripts and talk only to this origin; inline styles stay allowed because Swagger UI sets them.
 */
export const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  baseUri: ["'self'"],
  objectSrc: ["'none'"],
  frameAncestors: ["'none'"],
  formAction: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
}

/** Routes whose answers are data for one caller: never stored by a browser or a shared cache. */
const isApiPath = (url: string) => url === '/api' || url.startsWith('/api/') || url.startsWith('/api?')

/**
 * Security headers on every response, errors and 404s included (helmet's defaults: nosniff,
 * Referrer-Policy no-referrer, frame and cross-origin policies), with exactly the CSP above, and
 * Cache-Control: no-store on everything under /api. Register on the root instance before any
 * route (and before load shedding, so that its 503s carry the headers too).
 */
export const securityHeaders = fp(async (app) => {
  // helmet() parses its options once into a function that only sets headers. (@fastify/helmet
  // called helmet() again for every request: 4% of the server's CPU under single-event ingest.)
  const setHeaders = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: CONTENT_SECURITY_POLICY },
    // The same as frame-ancestors 'none', for browsers that predate it.
    xFrameOptions: { action: 'deny' },
  })
  app.addHook('onRequest', (request, reply, done) => setHeaders(request.raw, reply.raw, (err) => done(err instanceof Error ? err : undefined)))
  // onSend runs for every answer, also those of the error handler and the 404 handler.
  app.addHook('onSend', async (request, reply) => {
    if (isApiPath(request.url)) reply.header('cache-control', 'no-store')
  })
})
