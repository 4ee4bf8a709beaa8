import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { DataDirLockedError, LOCK_FILE, lockDataDir } from '../../src/db/data-dir-lock.js'
import { ADMIN_KEY } from '../helpers/app.js'
import { persistentStorageEnv, TEST_DATABASE_URL } from '../helpers/db.js'
import { runScript, startService } from '../helpers/service-process.js'
import { SEED_EVENT } from '../helpers/usage.js'

// Each run starts the service (the embedded engine) a few times: 20-40 s on an idle 2-core
// machine, but a busy shared one can stretch each start past 20 s.
t.setTimeout(240_000)

const auth = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }

async function postBatch(base: string, ids: string[]): Promise<{ created: number }> {
  const res = await fetch(`${base}/api/usage/batch`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ events: ids.map((id) => ({ ...SEED_EVENT, id, createdAt: '2025-03-10T12:00:00Z' })) }),
  })
  return (await res.json()) as { created: number }
}

async function storedCount(base: string): Promise<number> {
  const res = await fetch(`${base}/api/usage?startDate=2025-03-01&endDate=2025-03-31`, { headers: auth })
  const body = (await res.json()) as { stats: { _count: { id: number } }[] }
  return body.stats.reduce((sum, row) => sum + row._count.id, 0)
}

/** A pid that is certainly dead: a process that has already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])
  return Number(child.stdout.toString())
}

if (TEST_DATABASE_URL) {
  t.test('on PostgreSQL there is no data-dir lock: two services share one database', async (t) => {
    const storage = persistentStorageEnv(t, 'nolock')
    const first = startService(storage)
    t.teardown(() => first.stop('SIGKILL'))
    const base1 = await first.url
    const second = startService(storage)
    t.teardown(() => second.stop('SIGKILL'))
    const base2 = await second.url
    t.equal((await postBatch(base1, ['p1'])).created, 1)
    t.equal((await postBatch(base2, ['p2'])).created, 1)
    t.equal(await storedCount(base1), 2, 'each instance sees the other one’s writes')
    t.equal(await first.stop(), 0)
    t.equal(await second.stop(), 0)
  })
} else {
  t.test('the embedded data dir has one owner process', async (t) => {
    const storage = persistentStorageEnv(t, 'lock')
    const dataDir = storage.DATA_DIR
    const first = startService(storage)
    t.teardown(() => first.stop('SIGKILL'))
    const base = await first.url
    t.equal((await postBatch(base, ['l1', 'l2', 'l3'])).created, 3)
    const lock = JSON.parse(readFileSync(path.join(dataDir, LOCK_FILE), 'utf8')) as { pid: number; url?: string }
    t.equal(lock.pid, first.pid, 'the lock file holds the owner’s pid')
    t.equal(lock.url, base, 'and the URL it answers on')

    // Every later process refuses (or delegates); they do not touch the data dir, so run them at once.
    const range = ['--from', '2025-03-01', '--to', '2025-03-31']
    const second = startService(storage)
    const migrate = runScript('scripts/migrate.ts', [], storage)
    const told = runScript('scripts/reprice.ts', range, { ...storage, ADMIN_API_KEY: '', USAGE_API_KEY: '' })
    const delegated = runScript('scripts/reprice.ts', range, { ...storage, ADMIN_API_KEY: '', USAGE_API_KEY: ADMIN_KEY })

    t.equal(await second.exited, 1, 'a second npm start refuses')
    t.match(second.output(), `The embedded database in ${dataDir} is in use by another process (pid ${first.pid}`)

    t.equal(await migrate.exited, 1, 'npm run db:migrate refuses')
    t.match(migrate.output(), `${dataDir} is in use by another process (pid ${first.pid}`)
    t.match(migrate.output(), `stop it (pid ${first.pid}) and run npm run db:migrate again`)

    t.equal(await told.exited, 1, 'npm run reprice without a key does nothing')
    t.match(told.output(), `The service (pid ${first.pid}) owns the embedded database in ${dataDir}`)
    t.match(told.output(), `curl -s -X POST ${base}/api/prices/reprice -H "authorization: Bearer $ADMIN"`)
    t.match(told.output(), '"startDate":"2025-03-01","endDate":"2025-03-31"')

    t.equal(await delegated.exited, 0, 'npm run reprice with a key goes through the running service')
    t.match(delegated.output(), `repricing through its API at ${base}`)
    t.match(delegated.output(), /"scanned":3/)

    // kill -9 leaves the lock behind, naming a dead pid: the next start takes it over and sees
    // every acknowledged event.
    t.equal(await first.stop('SIGKILL'), 'SIGKILL')
    t.ok(existsSync(path.join(dataDir, LOCK_FILE)), 'kill -9 leaves its lock behind')
    const next = startService(storage)
    t.teardown(() => next.stop('SIGKILL'))
    const nextBase = await next.url
    t.equal(await storedCount(nextBase), 3, 'acknowledged events survive kill -9')
    t.equal((await postBatch(nextBase, ['l4'])).created, 1)
    t.equal(await next.stop('SIGTERM'), 0)
    t.notOk(existsSync(path.join(dataDir, LOCK_FILE)), 'a clean stop releases the lock')
  })

  t.test('a lock naming a dead pid is taken over; the same process cannot take a data dir twice', async (t) => {
    const { DATA_DIR: dataDir } = persistentStorageEnv(t, 'stale')
    const file = path.join(dataDir, LOCK_FILE)
    writeFileSync(file, JSON.stringify({ pid: deadPid(), startTicks: null, startedAt: 'then', command: 'crashed' }))
    const lock = lockDataDir(dataDir)
    t.equal((JSON.parse(readFileSync(file, 'utf8')) as { pid: number }).pid, process.pid)
    const again = (() => {
      try {
        return lockDataDir(dataDir)
      } catch (err) {
        return err
      }
    })()
    t.ok(again instanceof DataDirLockedError, 'a second open in the same process is refused')
    t.match((again as Error).message, `${dataDir} is already open in this process (pid ${process.pid})`)
    lock.release()
    t.notOk(existsSync(file), 'release() removes the lock')
    // A lock that names this very pid but is not held here is left from an earlier life of a
    // container whose entry point always gets the same pid: stale too.
    writeFileSync(file, JSON.stringify({ pid: process.pid, startTicks: null, startedAt: 'then', command: 'earlier life' }))
    lockDataDir(dataDir).release()
    t.notOk(existsSync(file))
  })

  t.test('an empty lock left by a crash is taken over; racing takeovers of a stale lock leave one owner', async (t) => {
    const { DATA_DIR: dataDir } = persistentStorageEnv(t, 'race')
    const file = path.join(dataDir, LOCK_FILE)
    writeFileSync(file, '')
    const past = new Date(Date.now() - 60_000)
    utimesSync(file, past, past)
    lockDataDir(dataDir).release()

    writeFileSync(file, JSON.stringify({ pid: deadPid(), startTicks: null, startedAt: 'then', command: 'crashed' }))
    const racers = Array.from({ length: 3 }, () =>
      spawn(process.execPath, ['--import=tsx', fileURLToPath(new URL('./fixtures/take-lock.ts', import.meta.url)), dataDir], {
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    )
    const answers = await Promise.all(
      racers.map(
        (child) =>
          new Promise<string>((resolve) => {
            let out = ''
            child.stdout.on('data', (d: Buffer) => {
              out += d.toString()
              if (out.includes('\n')) resolve(out.trim())
            })
            child.on('exit', () => resolve(out.trim()))
          }),
      ),
    )
    const winners = racers.filter((_, i) => answers[i] === 'acquired')
    t.equal(winners.length, 1, `exactly one owner: ${answers.join(', ')}`)
    for (const answer of answers.filter((a) => a !== 'acquired')) t.equal(answer, `refused ${winners[0]?.pid}`, 'the others name it')
    for (const child of racers) child.stdin.end()
    await Promise.all(racers.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)))
    t.notOk(existsSync(file), 'released by its owner')
  })
}
