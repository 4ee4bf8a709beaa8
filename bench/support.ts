/**
 * What the service benchmarks share: the real server as a child process (`node --import tsx
 * src/server.ts`, as `npm start` runs it) on a private schema or data dir, its CPU and memory
 * read from /proc, and percentiles.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'

export type Engine = 'postgres' | 'pglite'

export const BENCH_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const ADMIN_KEY = `usk_bench_${randomBytes(16).toString('hex')}`

export interface Server {
  url: string
  child: ChildProcess
  schema: string
  dataDir: string | null
  stop(): Promise<void>
  /** Highest resident memory so far (VmHWM), MB. */
  peakRssMb(): number
  /** Resident memory now (VmRSS), MB. */
  rssMb(): number
  /** CPU time the server process has used so far (user + system), in ms. */
  cpuMs(): number
  /** Stops the server and removes its schema or data dir. */
  dispose(): Promise<void>
}

// Linux reports process CPU time in clock ticks (USER_HZ), 100 per second on every common build.
const TICKS_PER_SECOND = 100

async function freePort(): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const address = srv.address()
  const port = typeof address === 'object' && address ? address.port : 0
  srv.close()
  await once(srv, 'close')
  return port
}

function procStatusMb(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
  return Math.round(kb / 1024)
}

export interface StartOptions {
  engine: Engine
  env?: Record<string, string>
  /** Reuse this data dir (embedded engine) instead of a fresh one; it is then not removed by dispose(). */
  dataDir?: string
  /** Reuse this schema (Postgres) instead of a fresh one; it is then not dropped by dispose(). */
  schema?: string
  /** Extra node flags for the server, e.g. --cpu-prof (not allowed in NODE_OPTIONS). */
  nodeArgs?: string[]
}

export async function startServer(opts: StartOptions): Promise<Server> {
  const port = await freePort()
  const ownsSchema = opts.schema === undefined
  const schema = opts.schema ?? `bench_${randomBytes(4).toString('hex')}`
  const ownsDataDir = opts.engine === 'pglite' && opts.dataDir === undefined
  const dataDir = opts.engine === 'pglite' ? (opts.dataDir ?? mkdtempSync(path.join(tmpdir(), 'bench-'))) : null
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import=tsx', 'src/server.ts'], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      // Per-request info logs cost throughput; operators at this rate run with warn.
      LOG_LEVEL: 'warn',
      ADMIN_API_KEY: ADMIN_KEY,
      // The per-key abuse limit would otherwise cap the benchmark itself.
      RATE_LIMIT_MAX: '10000000',
      DATABASE_URL: opts.engine === 'postgres' ? BENCH_DATABASE_URL : '',
      DATABASE_SCHEMA: schema,
      DATA_DIR: dataDir ?? '',
      ...opts.env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 120_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`)
    try {
      if ((await fetch(`${url}/readyz`)).ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('server did not become ready in 120 s')
    await new Promise((r) => setTimeout(r, 100))
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
  return {
    url,
    child,
    schema,
    dataDir,
    peakRssMb: () => procStatusMb(child.pid, 'VmHWM'),
    rssMb: () => procStatusMb(child.pid, 'VmRSS'),
    cpuMs: () => {
      // /proc/<pid>/stat: fields after the parenthesised command name; utime and stime are 14 and 15.
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND
    },
    stop,
    dispose: async () => {
      await stop()
      if (opts.engine === 'postgres' && ownsSchema) await dropSchema(schema)
      if (dataDir && ownsDataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: BENCH_DATABASE_URL })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await client.end()
}

export const authHeaders = { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` }

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

export const sortedPercentiles = (values: number[]) => {
  values.sort((a, b) => a - b)
  return { p50: percentile(values, 50), p99: percentile(values, 99), p999: percentile(values, 99.9), max: values.length ? values[values.length - 1] : NaN }
}

export const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a'

/** Stored events, read through the service itself (works for both engines); retried while the service sheds load. */
export async function storedEvents(server: Server): Promise<number> {
  let res = await fetch(`${server.url}/api/usage?limit=1`, { headers: authHeaders })
  for (let attempt = 0; res.status === 503 && attempt < 10; attempt++) {
    await new Promise((r) => setTimeout(r, 1000))
    res = await fetch(`${server.url}/api/usage?limit=1`, { headers: authHeaders })
  }
  const body = (await res.json()) as { stats?: { _count: { id: number } }[] }
  if (!body.stats) throw new Error(`GET /api/usage answered ${res.status}: ${JSON.stringify(body)}`)
  return body.stats.reduce((n, s) => n + s._count.id, 0)
}
