import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { ADMIN_KEY } from './app.js'

export interface Instance {
  url: string
  /** Everything the process wrote to stdout (JSON log lines). */
  output: () => string
  /** SIGKILL: no graceful shutdown, in-flight requests are cut. */
  kill: () => Promise<void>
}

/**
 * Starts the real entry point (src/server.ts) as a child process on a free port, with the test
 * defaults (admin key, no load shedding) plus `env`. Killed when the test ends.
 */
export async function startInstance(t: { teardown(fn: () => unknown): void }, env: Record<string, string>): Promise<Instance> {
  const child = spawn(process.execPath, ['--import=tsx', 'src/server.ts'], {
    env: {
      ...process.env,
      ADMIN_API_KEY: ADMIN_KEY,
      MAX_EVENT_LOOP_DELAY_MS: '0',
      MAX_HEAP_USED_BYTES: '0',
      INGEST_MAX_QUEUE_DELAY_MS: '60000',
      INGEST_MAX_LOOP_DELAY_MS: '0',
      ...env,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  t.teardown(() => stop(child, exited))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`instance did not start:\n${out}\n${err}`)), 60_000)
    const onData = () => {
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    }
    child.stdout?.on('data', onData)
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`instance exited with ${code}:\n${out}\n${err}`))
    })
  })
  return { url, output: () => out, kill: () => stop(child, exited) }
}

async function stop(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  await exited
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** A private redis-server on a free port (nothing saved to disk); killed when the test ends. */
export async function startPrivateRedis(
  t: { teardown(fn: () => unknown): void },
): Promise<{ url: string; kill: () => Promise<void>; signal: (signal: NodeJS.Signals) => void }> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  t.teardown(() => stop(child, exited))
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 15_000)
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      if (/Ready to accept connections/i.test(out)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.on('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${out}`)))
  })
  return { url: `redis://127.0.0.1:${port}`, kill: () => stop(child, exited), signal: (signal) => void child.kill(signal) }
}

/** A key prefix no other test run uses, so tests sharing one Redis never see each other's counters. */
export function redisTestPrefix(): string {
  return `test:${process.pid}:${randomBytes(4).toString('hex')}:`
}

export interface Reply<T> {
  status: number
  body: T
}

export async function call<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  opts: { key?: string; body?: unknown } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.key ?? ADMIN_KEY}` }
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${base}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) })
  const text = await res.text()
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T }
}
