import t from 'tap'
import { execFile } from 'node:child_process'
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { clientFor, sampleEvent, startUsageServer, tempDir } from './support.js'
import { waitFor } from '../helpers/wait.js'

const run = promisify(execFile)
const fixture = fileURLToPath(new URL('./fixtures/spool-and-crash.ts', import.meta.url))

t.test('process restart with a non-empty spool: a new client replays it, skipping a corrupt line', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  const spoolDir = await tempDir(t)
  // A process that spools 40 events (service down) and dies without close().
  const { stdout } = await run(process.execPath, ['--import', 'tsx', fixture, spoolDir, '40', server.url], { timeout: 20_000 })
  t.match(JSON.parse(stdout), { spooled: 40 })
  const segments = (await readdir(spoolDir)).filter((name) => name.endsWith('.jsonl'))
  t.ok(segments.length >= 1, 'spool segments left on disk')
  t.ok((await readdir(spoolDir)).includes('spool.lock'), 'the dead process left its lock behind')
  // A torn write and some garbage, as after a crash or a bad edit.
  const last = join(spoolDir, segments[segments.length - 1])
  const lines = (await readFile(last, 'utf8')).split('\n')
  lines.splice(1, 0, '{"id": "broken-line", "botId": ')
  await writeFile(last, lines.join('\n'))
  await appendFile(last, '{"id":"torn')

  await server.up()
  const { client, errors } = clientFor(t, server, { spoolDir })
  await waitFor(() => client.stats().sent === 40, 'replay of the spool from the previous process')
  t.equal(server.stored.length, 40)
  t.same(
    [...server.ids()].sort(),
    Array.from({ length: 40 }, (_, i) => `restart-${i}`).sort(),
  )
  const corrupt = errors.filter((error) => error.code === 'USAGE_CLIENT_SPOOL_CORRUPT')
  t.equal(corrupt.length, 2, 'both bad lines reported')
  t.match(corrupt[1].message, /torn write/)
  await client.close()
  const left = (await readdir(spoolDir)).filter((name) => name.endsWith('.jsonl'))
  t.same(left, [], 'acknowledged segments are deleted')
})

t.test('a crash mid-replay loses nothing: the segment stays until acknowledged', async (t) => {
  const server = await startUsageServer(t)
  await server.down()
  const spoolDir = await tempDir(t)
  const first = clientFor(t, server, { spoolDir, batchSize: 10 })
  for (let i = 0; i < 30; i++) first.client.track({ ...sampleEvent(i), id: `m${i}` })
  await first.client.flush()
  t.equal(first.client.stats().spooled, 30)
  await first.client.close({ deadlineMs: 50 })

  // The service comes back but loses the answer to the first replayed request, then fails.
  await server.up()
  server.killNext(1, 'after-store')
  server.failNext(20, 500)
  const second = clientFor(t, server, { spoolDir, batchSize: 10, retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 5 } })
  await waitFor(() => server.requests.length >= 3, 'replay attempts', 5000)
  await second.client.close({ deadlineMs: 50 })
  const storedThenKilled = server.requests.find((request) => request.status === 'killed')?.eventCount ?? 0
  t.ok(storedThenKilled > 0)
  t.equal(server.stored.length, storedThenKilled)
  t.ok((await readdir(spoolDir)).some((name) => name.endsWith('.jsonl')), 'segment kept: its events were never acknowledged')

  const third = clientFor(t, server, { spoolDir, batchSize: 10 })
  await waitFor(() => server.stored.length === 30, 'full replay', 10_000)
  await waitFor(() => third.client.stats().sent === 30, 'acknowledgements')
  t.equal(server.duplicatesReceived, storedThenKilled, 'the stored-but-unacknowledged events were replayed again and deduped')
  t.equal(new Set(server.ids()).size, 30)
})

t.test('a second live client on the same spool directory runs without the spool', async (t) => {
  const server = await startUsageServer(t)
  const spoolDir = await tempDir(t)
  const first = clientFor(t, server, { spoolDir })
  first.client.track(sampleEvent(1))
  await first.client.flush()
  const second = clientFor(t, server, { spoolDir })
  second.client.track(sampleEvent(2))
  await second.client.flush()
  t.match(second.errors, [{ code: 'USAGE_CLIENT_SPOOL_LOCKED' }])
  t.equal(server.stored.length, 2, 'it still sends')
})
