// What the client does at the end of a script that never calls close(), what it refuses to
// retry, and the strings it builds so that the service can store them.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { readdir, readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { isRetryableStatus } from '../../src/client/retry-policy.js'
import { UsageClient, type UsageClientError } from '../../src/client/index.js'
import { clientFor, sampleEvent, startUsageServer, tempDir } from './support.js'

const run = promisify(execFile)
const fixture = fileURLToPath(new URL('./fixtures/track-and-end.ts', import.meta.url))

interface ChildReport {
  stats: ReturnType<UsageClient['stats']>
  errors: string[]
}

async function trackAndEnd(args: string[]): Promise<ChildReport> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', fixture, ...args], { timeout: 30_000 })
  return JSON.parse(stdout) as ChildReport
}

t.test('a script that tracks and ends without close() delivers what it tracked', async (t) => {
  const server = await startUsageServer(t)
  const report = await trackAndEnd([server.url, '25', ''])
  t.equal(server.stored.length, 25, 'every event reached the service')
  t.same(server.ids().sort(), Array.from({ length: 25 }, (_, i) => `exit-${i}`).sort())
  t.match(report.stats, { sent: 25, queued: 0, dropped: 0, failed: 0 })
  t.equal(server.requests.length, 1, 'in one batch, once')
})

t.test('at exit with the service down, what is queued goes to the spool', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  const spoolDir = await tempDir(t)
  const report = await trackAndEnd([server.url, '25', spoolDir])
  t.match(report.stats, { sent: 0, spooled: 25, dropped: 0 })
  const segments = (await readdir(spoolDir)).filter((name) => name.endsWith('.jsonl'))
  const lines = (await Promise.all(segments.map((name) => readFile(join(spoolDir, name), 'utf8')))).join('').trim().split('\n')
  t.equal(lines.length, 25, 'replayed by the next process')
})

t.test('at exit with the service down and no spool, the exit flush is bounded by the close deadline', async (t) => {
  const server = await startUsageServer(t)
  server.hangNext(10)
  const report = await trackAndEnd([server.url, '5', '', '300'])
  t.match(report.stats, { sent: 0, dropped: 5 })
  t.ok(report.errors.includes('USAGE_CLIENT_CLOSED'), 'the loss is reported')
})

t.test('many open clients share one beforeExit listener', async (t) => {
  const server = await startUsageServer(t)
  const before = process.listenerCount('beforeExit')
  for (let i = 0; i < 12; i++) clientFor(t, server)
  t.ok(process.listenerCount('beforeExit') <= before + 1, 'no listener per client (no MaxListenersExceededWarning)')
})

t.test('the retry decision: 408, 429 and 5xx can succeed later; other 4xx cannot', async (t) => {
  for (const status of [408, 429, 500, 502, 503, 504]) t.ok(isRetryableStatus(status), `${status} is retried`)
  for (const status of [400, 401, 403, 404, 409, 413, 415, 422]) t.notOk(isRetryableStatus(status), `${status} is not`)
})

t.test('a non-retryable 4xx drops the events with an error naming the cause, and never spools them', async (t) => {
  for (const status of [400, 401, 403, 404, 409, 413, 422]) {
    const server = await startUsageServer(t)
    const spoolDir = await tempDir(t)
    const { client, errors } = clientFor(t, server, { spoolDir })
    server.failNext(1, status)
    client.track(sampleEvent(1))
    t.equal(await client.flush({ timeoutMs: 10_000 }), true)
    t.match(client.stats(), { sent: 0, failed: 1, retried: 0, spooled: 0, queued: 0 }, `${status}: failed once`)
    t.equal(errors.length, 1)
    t.match(errors[0], { code: 'USAGE_CLIENT_REQUEST_REJECTED', statusCode: status, serverCode: 'FAULT' })
    t.match(errors[0].message, `usage service answered ${status} FAULT: injected fault`)
    t.equal(errors[0].eventIds.length, 1)
    await client.close()
    t.same((await readdir(spoolDir)).filter((name) => name.endsWith('.jsonl')), [], `${status}: nothing spooled`)
    t.equal(server.requests.length, 1, `${status}: asked once`)
  }
})

t.test('408 is retried like 429 and 5xx', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server)
  server.failNext(1, 408)
  client.track(sampleEvent(1))
  t.equal(await client.flush({ timeoutMs: 10_000 }), true)
  t.match(client.stats(), { sent: 1, failed: 0, retried: 1 })
  t.equal(server.stored.length, 1)
})

t.test('per-item failures in a batch response are dropped, whatever their status; the rest are sent', async (t) => {
  let requests = 0
  // A service that refuses item 0 as unstorable (invalid + 422-style code) and answers item 1 with
  // a status this client does not know.
  const service = createServer((request, response) => {
    requests++
    let body = ''
    request.on('data', (chunk: Buffer) => (body += chunk.toString()))
    request.on('end', () => {
      const events = (JSON.parse(body) as { events: { id: string }[] }).events
      const results = events.map((event, index) =>
        index === 0
          ? { index, status: 'invalid', id: event.id, error: { code: 'UNSTORABLE_EVENT', message: 'body.events[0].metadata.note contains a NUL character' } }
          : index === 1
            ? { index, status: 'rejected', id: event.id, error: { code: 'SOMETHING_NEW', message: 'refused for a new reason' } }
            : { index, status: 'created', id: event.id },
      )
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ results, created: results.length - 2, duplicates: 0, invalid: 2 }))
    })
  })
  service.listen(0, '127.0.0.1')
  await once(service, 'listening')
  t.teardown(() => new Promise((resolve) => service.close(resolve)))
  const address = service.address()
  const port = typeof address === 'object' && address ? address.port : 0
  const errors: UsageClientError[] = []
  const client = new UsageClient({
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey: 'k',
    botId: 'b',
    spoolDir: await tempDir(t),
    flushIntervalMs: 10,
    retry: { maxRetries: 2, baseDelayMs: 5, maxDelayMs: 20 },
    onError: (error) => errors.push(error),
  })
  t.teardown(() => client.close({ deadlineMs: 500 }))
  for (let i = 0; i < 4; i++) client.track(sampleEvent(i))
  t.equal(await client.flush({ timeoutMs: 10_000 }), true)
  t.match(client.stats(), { sent: 2, failed: 2, retried: 0, spooled: 0 })
  t.equal(requests, 1, 'not retried')
  t.match(errors, [
    { code: 'USAGE_CLIENT_EVENT_REJECTED', serverCode: 'UNSTORABLE_EVENT', message: /contains a NUL character/ },
    { code: 'USAGE_CLIENT_EVENT_REJECTED', serverCode: 'SOMETHING_NEW', message: /refused for a new reason/ },
  ])
})

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

t.test('errorMessage is cut on code points, and what the database refuses is replaced', async (t) => {
  const server = await startUsageServer(t)
  const { client, errors } = clientFor(t, server)
  // 3,999 units and an emoji: cutting at 4,000 units would keep half of it.
  const long = `${'a'.repeat(3999)}\u{1F600} and more`
  client.track({ ...sampleEvent(1), success: false, errorMessage: long })
  client.track({ ...sampleEvent(2), success: false, errorMessage: 'bad \u0000 byte and a lone \uD83D surrogate' })
  client.track({ ...sampleEvent(3), metadata: { note: 'nul\u0000', ['key\uDE00']: ['\uD800'], nested: { ok: '\u{1F600}' } } })
  client.track({ ...sampleEvent(4), model: 'gpt\u0000' })
  t.equal(await client.flush({ timeoutMs: 10_000 }), true)
  t.equal(server.stored.length, 3)
  const [first, second, third] = server.stored.map((stored) => stored.event)
  t.equal(first.errorMessage, 'a'.repeat(3999), 'the pair is dropped whole')
  t.equal(second.errorMessage, 'bad \uFFFD byte and a lone \uFFFD surrogate')
  t.same(third.metadata, { note: 'nul\uFFFD', ['key\uFFFD']: ['\uFFFD'], nested: { ok: '\u{1F600}' } })
  for (const event of [first, second, third]) t.notMatch(JSON.stringify(event), /\\u0000/)
  for (const event of [first, second]) t.notOk(loneSurrogate.test(String(event.errorMessage)))
  t.match(errors, [{ code: 'USAGE_CLIENT_INVALID_EVENT', message: 'model contains a NUL character or a lone surrogate' }])
  t.match(client.stats(), { sent: 3, failed: 1 })
})
