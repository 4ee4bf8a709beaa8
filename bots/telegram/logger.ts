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
