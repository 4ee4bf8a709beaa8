import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { SMTPServer } from 'smtp-server'

/**
 * Receivers for budget alerts on 127.0.0.1: a webhook endpoint and a real SMTP server (the
 * smtp-server package). Telegram alerts go to the fake Bot API in fake-telegram.ts.
 */

export interface ReceivedRequest {
  path: string
  headers: IncomingHttpHeaders
  /** Exactly the bytes received, for signature checks. */
  rawBody: string
  json: Record<string, unknown>
}

interface HttpFake {
  readonly url: string
  readonly received: ReceivedRequest[]
  close(): Promise<void>
}

async function listen(server: Server): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      const closed = once(server, 'close')
      server.close()
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}

/** Reads a request's whole body: the text, and the JSON object it holds (null when it is not JSON). */
function readBody(req: IncomingMessage, onBody: (rawBody: string, json: Record<string, unknown> | null) => void): void {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks).toString('utf8')
    let json: Record<string, unknown> | null = null
    try {
      json = JSON.parse(rawBody) as Record<string, unknown>
    } catch {
      // not JSON: the caller decides
    }
    onBody(rawBody, json)
  })
}

async function fakeHttp(answer: (r: ReceivedRequest) => { status: number; body: unknown }): Promise<HttpFake> {
  const received: ReceivedRequest[] = []
  const server = createServer((req, res) => {
    readBody(req, (rawBody, json) => {
      // A body that is not JSON is recorded as {}.
      const r = { path: req.url ?? '/', headers: req.headers, rawBody, json: json ?? {} }
      received.push(r)
      const { status, body } = answer(r)
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    })
  })
  const { url, close } = await listen(server)
  return { url, received, close }
}

export interface WebhookReceiver extends HttpFake {
  /** Statuses for the next requests, in order; then 200. */
  failNext(...statuses: number[]): void
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const script: number[] = []
  const fake = await fakeHttp(() => {
    const status = script.shift() ?? 200
    return { status, body: status === 200 ? { received: true } : { error: 'scripted failure' } }
  })
  return { ...fake, url: `${fake.url}/hooks/budget`, failNext: (...s) => script.push(...s) }
}

export interface ReceivedMail {
  from: string | false
  to: string[]
  raw: string
  subject: string
}

export interface FakeSmtp {
  readonly url: string
  readonly mails: ReceivedMail[]
  close(): Promise<void>
}

/** Unfolds a header and decodes RFC 2047 Q-encoded words (how nodemailer writes long or quoted subjects). */
function decodeHeader(value: string): string {
  const unfolded = value.replace(/\r\n[ \t]/g, ' ')
  return unfolded
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?UTF-8\?Q\?(.*?)\?=/gi, (_m, text: string) =>
      Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_h, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8'),
    )
}

/** A real SMTP server without TLS or auth, keeping every message it accepts. */
export async function startSmtpServer(): Promise<FakeSmtp> {
  const mails: ReceivedMail[] = []
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8')
        const subject = decodeHeader(/^Subject: (.*(?:\r\n[ \t].*)*)/m.exec(raw)?.[1] ?? '')
        mails.push({
          from: session.envelope.mailFrom === false ? false : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          subject,
        })
        callback()
      })
    },
  })
  server.listen(0, '127.0.0.1')
  await once(server.server, 'listening')
  const { port } = server.server.address() as AddressInfo
  return { url: `smtp://127.0.0.1:${port}`, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

export interface FakeSlack extends HttpFake {
  /** Statuses for the next requests, in order; then 200 "ok". */
  failNext(...statuses: number[]): void
}

/** Why Slack would refuse a Block Kit payload (a subset of its checks); null when it is valid. */
export function slackPayloadProblem(body: Record<string, unknown>): string | null {
  if (typeof body.text !== 'string' || body.text === '') return 'missing_text'
  if (!Array.isArray(body.blocks) || body.blocks.length === 0 || body.blocks.length > 50) return 'invalid_blocks'
  for (const block of body.blocks as Record<string, unknown>[]) {
    const text = block.text as { type?: string; text?: string } | undefined
    switch (block.type) {
      case 'header':
        if (text?.type !== 'plain_text' || !text.text || text.text.length > 150) return 'invalid_blocks'
        break
      case 'section': {
        const fields = block.fields as { type?: string; text?: string }[] | undefined
        if (!text && !fields) return 'invalid_blocks'
        if (fields && (fields.length > 10 || fields.some((f) => (f.type !== 'mrkdwn' && f.type !== 'plain_text') || !f.text || f.text.length > 2000))) return 'invalid_blocks'
        break
      }
      case 'actions':
      case 'context':
        if (!Array.isArray(block.elements) || block.elements.length === 0) return 'invalid_blocks'
        break
      default:
        return 'invalid_blocks'
    }
  }
  return null
}

/** A Slack incoming webhook: 200 "ok" for a valid payload, 400 "invalid_blocks" & co otherwise, like Slack. */
export async function startFakeSlack(): Promise<FakeSlack> {
  const received: ReceivedRequest[] = []
  const script: number[] = []
  const server = createServer((req, res) => {
    readBody(req, (rawBody, json) => {
      if (json === null) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('invalid_payload')
        return
      }
      received.push({ path: req.url ?? '/', headers: req.headers, rawBody, json })
      const scripted = script.shift()
      if (scripted !== undefined && scripted !== 200) {
        res.writeHead(scripted, { 'content-type': 'text/plain' }).end('scripted failure')
        return
      }
      const problem = req.headers['content-type']?.startsWith('application/json') ? slackPayloadProblem(json) : 'invalid_payload'
      res.writeHead(problem === null ? 200 : 400, { 'content-type': 'text/plain' }).end(problem ?? 'ok')
    })
  })
  const { url, close } = await listen(server)
  return { url: `${url}/services/T000/B000/XXXXsecretXXXX`, received, close, failNext: (...s) => script.push(...s) }
}
