import { timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Update } from 'telegraf/types'
import type { WebhookConfig } from './config.js'

const maxUpdateBytes = 1_000_000

/**
 * The webhook listener: only POSTs to the configured path carrying the secret token are read.
 * Each update is acknowledged at once and handed to `onUpdate` in the background: Telegram
 * re-sends an update whose webhook call has not answered in time, and a model call can take a minute.
 */
export async function listenForWebhook(webhook: WebhookConfig, onUpdate: (update: Update) => void): Promise<Server> {
  const expectedSecret = Buffer.from(webhook.secretToken)
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const secret = Buffer.from(String(request.headers['x-telegram-bot-api-secret-token'] ?? ''))
    const authorized = secret.length === expectedSecret.length && timingSafeEqual(secret, expectedSecret)
    if (request.method !== 'POST' || request.url !== webhook.path || !authorized) {
      response.writeHead(request.method !== 'POST' || request.url !== webhook.path ? 404 : 403).end()
      request.resume()
      return
    }
    readJson(request, maxUpdateBytes).then(
      (update) => {
        response.writeHead(200).end()
        onUpdate(update as Update)
      },
      () => response.writeHead(400).end(),
    )
  })
  server.listen(webhook.port, webhook.host)
  await once(server, 'listening')
  return server
}

async function readJson(request: IncomingMessage, limitBytes: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limitBytes) throw new Error('body too large')
    chunks.push(chunk)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
}
