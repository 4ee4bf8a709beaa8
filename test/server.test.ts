import { spawn } from 'node:child_process'
import t from 'tap'
import { persistentStorageEnv } from './helpers/db.js'
import { SEED_EVENT } from './helpers/usage.js'

interface Running {
  stdout: () => string
  url: Promise<string>
  stop: (signal: NodeJS.Signals) => Promise<number | null>
}

/** Starts the real entry point (what `npm start` runs) as a child process. */
function startServer(env: Record<string, string>): Running {
  const child = spawn(process.execPath, ['--import=tsx', 'src/server.ts'], {
    env: { ...process.env, DATABASE_URL: '', ...env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}\n${err}`)), 60_000)
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}\n${err}`)))
  })
  return {
    stdout: () => out,
    url,
    stop: (signal) =>
      new Promise((resolve) => {
        child.on('exit', (code) => resolve(code))
        child.kill(signal)
      }),
  }
}

t.test('npm start: first start prints one admin key, which works; SIGTERM stops cleanly; the next start prints none', async (t) => {
  const storage = persistentStorageEnv(t, 'srv')
  const env = { ...storage, ADMIN_API_KEY: '' }

  const first = startServer(env)
  const base = await first.url
  const keys = first.stdout().match(/usk_[A-Za-z0-9_-]{32}/g) ?? []
  t.equal(keys.length, 1, 'exactly one key printed')
  const auth = { authorization: `Bearer ${keys[0]}`, 'content-type': 'application/json' }
  const created = await fetch(`${base}/api/usage`, { method: 'POST', headers: auth, body: JSON.stringify(SEED_EVENT) })
  t.equal(created.status, 201)
  t.equal(await first.stop('SIGTERM'), 0, 'graceful shutdown exits 0')

  const second = startServer(env)
  const base2 = await second.url
  t.notMatch(second.stdout(), /usk_[A-Za-z0-9_-]{32}/, 'no second key printed')
  const stats = await fetch(`${base2}/api/usage`, { headers: auth })
  t.equal(stats.status, 200)
  t.equal(((await stats.json()) as { totalCost: number }).totalCost, 0.00675)
  t.equal(await second.stop('SIGINT'), 0)
})

t.test('a bad environment stops start-up with one message listing every problem', async (t) => {
  const child = spawn(process.execPath, ['--import=tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: 'x', LOG_LEVEL: 'loud' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const code = await new Promise((r) => child.on('exit', r))
  t.equal(code, 1)
  t.match(err, /^Invalid configuration:\n/)
  t.match(err, /\n {2}- PORT must be an integer between 0 and 65535 \(got "x"\)/)
  t.match(err, /\n {2}- LOG_LEVEL must be one of .* \(got "loud"\)/)
})
