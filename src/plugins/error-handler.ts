import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { databaseFailure } from '../db/connect.js'
import { errorBody, Errors, isDeclared } from '../errors.js'
import { describeValidationError, validatorCompiler } from '../lib/validation.js'

type Limits = Pick<Config, 'bodyLimit' | 'queryTimeoutMs' | 'pgConnectTimeoutMs'>

/**
 * The one place where errors Fastify raises itself (body parsing, validation) become errors
 * declared in src/errors.ts. Anything else passes through unchanged.
 */
export function toDeclaredError(error: FastifyError, request: FastifyRequest, limits: Limits): FastifyError {
  if (error.validation) return error instanceof Errors.validation ? error : new Errors.validation(error.message)
  if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError) return new Errors.invalidJson(error.message)
  switch (error.code) {
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new Errors.emptyJson()
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new Errors.bodyTooLarge(limits.bodyLimit)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new Errors.unsupportedMediaType(request.headers['content-type'] ?? '(none)')
  }
  return error
}

/**
 * What a failure of the service (5xx) answers: our own declared 503s (overload, database down or
 * busy) keep their message; a database timeout or a full pool become their declared 503; anything
 * else is an internal failure whose details stay in the log, never in the response.
 */
function infrastructureError(error: FastifyError, limits: Limits): FastifyError {
  if (error.statusCode === 503 && isDeclared(error)) return error
  switch (databaseFailure(error)) {
    case 'statement-timeout':
      return new Errors.queryTimeout(limits.queryTimeoutMs)
    case 'pool-busy':
      return new Errors.databaseBusy(limits.pgConnectTimeoutMs)
    case 'unavailable':
      return new Errors.databaseUnavailable()
    default:
      return new Errors.internal()
  }
}

function send(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send(errorBody(status, code, message))
}

/** "POST /api/budgets": the route pattern, never the URL (which may carry a query string). */
function routeOf(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions.url ?? '(no route)'}`
}

/**
 * How every request fails: JSON bodies only, validation messages that name the field, one error
 * body for every status, and log lines that never quote a body. Registered on the root, before
 * any route.
 */
export const errorHandler = fp<{ config: Limits }>(async (app: FastifyInstance, { config }) => {
  // JSON only: a text/plain body would otherwise reach validation as a string.
  app.removeContentTypeParser('text/plain')
  app.setValidatorCompiler(validatorCompiler)
  app.setSchemaErrorFormatter((errors, dataVar) => {
    const first = errors[0]
    return new Errors.validation(first ? describeValidationError(dataVar, first) : `${dataVar} is invalid`)
  })

  app.setErrorHandler((raw: FastifyError, request, reply) => {
    const error = toDeclaredError(raw, request, config)
    const status = error.statusCode ?? 500
    const code = error.code ?? 'INTERNAL_ERROR'
    if (status >= 500) {
      const failure = databaseFailure(error)
      // Shedding load is expected under overload; logging every shed request would add to it.
      if (error instanceof Errors.overloaded || error instanceof Errors.analyticsBusy) request.log.debug({ code, route: routeOf(request) }, error.message)
      else if (failure === 'statement-timeout' || failure === 'pool-busy') request.log.warn({ failure, route: routeOf(request) }, 'database busy')
      else request.log.error({ err: error, code, route: routeOf(request) }, 'request failed')
      const answer = infrastructureError(error, config)
      const answerStatus = answer.statusCode ?? 500
      // A cancelled query would most likely be cancelled again at once: ask for a longer pause.
      if (answerStatus === 503) reply.header('retry-after', answer instanceof Errors.queryTimeout ? '5' : '1')
      return send(reply, answerStatus, answer.code, answer.message)
    }
    if (status === 429 && !reply.hasHeader('retry-after')) reply.header('retry-after', '1')
    // A JSON parse error quotes the body it could not parse: its message stays out of the log.
    request.log.info({ code, status, route: routeOf(request) }, error instanceof Errors.invalidJson ? 'request body is not valid JSON' : error.message)
    return send(reply, status, code, error.message)
  })

  app.setNotFoundHandler((request, reply) => {
    const error = new Errors.notFound(`Route ${request.method} ${request.url.split('?')[0]} not found`)
    return send(reply, 404, error.code, error.message)
  })
})
