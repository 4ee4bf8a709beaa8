import { execFile } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * A PostgreSQL cluster of a test's own (initdb in a temp dir, run as user postgres on a free
 * port), for tests that stop or restart the server: the shared one is never touched.
 */
export interface PrivatePostgres {
  readonly url: string
  /** `pg_ctl restart`; `immediate` is a crash of the server (WAL recovery on start). */
  restart(mode: 'fast' | 'immediate'): Promise<void>
  stop(): Promise<void>
}

/** The newest installed server's bin directory, or null when there is none (or no root to runuser). */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql'
  if (process.getuid?.() !== 0 || !existsSync(root) || !existsSync('/usr/sbin/runuser')) return null
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'pg_ctl'))).sort((a, b) => Number(b) - Number(a))
  return versions.length > 0 ? path.join(root, versions[0], 'bin') : null
}

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  return typeof address === 'object' && address ? address.port : 0
}

export async function startPrivatePostgres(t: { teardown(fn: () => unknown): void }): Promise<PrivatePostgres> {
  const bin = postgresBinDir()
  if (!bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql')
  const dir = mkdtempSync(path.join(tmpdir(), 'private-pg-'))
  chownSync(dir, uidOf('postgres'), gidOf('postgres'))
  const data = path.join(dir, 'data')
  const asPostgres = (tool: string, args: string[]) => run('/usr/sbin/runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args], { timeout: 60_000 })
  await asPostgres('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync'])
  const port = await freePort()
  // fsync off: the test crashes the server process, never the machine, and the shared disk is slow.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`
  const ctl = (args: string[]) => asPostgres('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-o', options, '-w', '-t', '60', ...args])
  await ctl(['start'])
  let running = true
  const stop = async (): Promise<void> => {
    if (!running) return
    running = false
    await ctl(['stop', '-m', 'immediate']).catch(() => undefined)
  }
  t.teardown(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: async (mode) => {
      await ctl(['restart', '-m', mode])
    },
    stop,
  }
}

function uidOf(user: string): number {
  return idOf(user, 2)
}

function gidOf(user: string): number {
  return idOf(user, 3)
}

function idOf(user: string, field: number): number {
  // /etc/passwd: name:x:uid:gid:...
  const line = readPasswd().find((entry) => entry.split(':')[0] === user)
  if (!line) throw new Error(`no user ${user}`)
  return Number(line.split(':')[field])
}

function readPasswd(): string[] {
  return readFileSync('/etc/passwd', 'utf8').split('\n')
}
