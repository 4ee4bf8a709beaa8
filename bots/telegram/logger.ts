import pino from 'pino'

export type BotLogger = pino.Logger

/**
 * JSON lines on stdout (or `destination`). The bot logs no configuration object; the redaction
 * is a second line of defence should a secret-named field ever reach a log call.
 */
export function createBotLogger(level: string, destination?: NodeJS.WritableStream): BotLogger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'telegram-bot' },
    redact: {
      paths: ['token', 'apiKey', 'secretToken', '*.token', '*.apiKey', '*.secretToken', '*.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
  }
  return destination ? pino(options, destination) : pino(options)
}

/** What an error log line carries: never request options, headers or payloads (they hold keys and user text). */
export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) }
  const status = (error as { status?: unknown }).status
  const code = (error as { code?: unknown }).code
  return {
    type: error.constructor.name,
    message: error.message,
    ...(typeof status === 'number' ? { status } : {}),
    ...(typeof code === 'number' || typeof code === 'string' ? { code } : {}),
  }
}
