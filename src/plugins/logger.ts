import pino from 'pino'
import type { Config } from '../config.js'
import { errorForLog, requestForLog, scrubSecrets } from './log-safety.js'

/** Paths pino must never print: keys, tokens and anything that looks like them. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  '*.apiKey',
  '*.key',
  '*.token',
  '*.secret',
  '*.password',
]

/** The service's logger: redacted, serialized by log-safety, pretty only for a human at a terminal. */
export function createLogger(config: Config, destination?: NodeJS.WritableStream): pino.Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { req: requestForLog, err: errorForLog },
    hooks: { streamWrite: scrubSecrets },
  }
  if (destination) return pino(options, destination)
  // Pretty output for a human at a terminal; JSON lines for everything else.
  if (process.stdout.isTTY) return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:standard' } } })
  return pino(options)
}
