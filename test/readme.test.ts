// Runs every README block tagged `sh`, in order, the way a new user would: against a fresh service
// started as `npm start` starts it, with real curl and bash. Blocks that need other setup are
// tagged `bash` or `text` and are not run.
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { persistentStorageEnv } from './helpers/db.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The README's `sh` blocks, in order. */
function shBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)].map((m) => m[1])
}

/**
 * Splits a block into the commands a user would paste one by one: a command ends at a newline
 * outside quotes that is not escaped with a backslash; comments are dropped.
 */
function shellCommands(block: string): string[] {
  const commands: string[] = []
  let current = ''
  let quote: "'" | '"' | null = null
  for (let i = 0; i < block.length; i++) {
    const c = block[i]
    if (quote) {
      current += c
      if (c === '\\' && quote === '"') current += block[++i] ?? ''
      else if (c === quote) quote = null
    } else if (c === "'" || c === '"') {
      quote = c
      current += c
    } else if (c === '\\' && block[i + 1] === '\n') {
      current += ' '
      i++
    } else if (c === '#' && (current === '' || /\s$/.test(current))) {
      while (i + 1 < block.length && block[i + 1] !== '\n') i++
    } else if (c === '\n') {
      // A here-document runs to its delimiter line; a trailing pipe or && continues the command.
      const heredoc = /<<-?\s*['"]?(\w+)['"]?/.exec(current)
      if (heredoc) {
        const end = block.indexOf(`\n${heredoc[1]}\n`, i)
        const stop = end === -1 ? block.length : end + heredoc[1].length + 1
        current += block.slice(i, stop)
        i = stop - 1
      } else if (/(\|\||&&|\|)\s*$/.test(current)) {
        current += '\n'
        continue
      }
      if (current.trim()) commands.push(current.trim())
      current = ''
    } else {
      current += c
    }
  }
  if (current.trim()) commands.push(current.trim())
  return commands
}

interface Server {
  port: number
  adminKey: string
  stop: () => Promise<void>
}

/** The real entry point (what `npm start` runs) as a child process on a free port. */
async function startService(env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, ['--import=tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // Never outlive the test, also when tap stops it at its timeout.
  const kill = () => child.kill('SIGKILL')
  process.once('exit', kill)
  let out = ''
  let err = ''
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start:\n${out}\n${err}`)), 120_000)
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('exit', (code) => reject(new Error(`service exited with ${code}:\n${out}\n${err}`)))
  })
  const adminKey = /usk_[A-Za-z0-9_-]{32}/.exec(out)?.[0]
  if (!adminKey) throw new Error(`no admin key printed at first start:\n${out}`)
  return {
    port,
    adminKey,
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** An error answer of this API, wherever it appears in the output. */
function errorBody(output: string): string | null {
  for (const line of output.split('\n')) {
    try {
      const value = JSON.parse(line) as { statusCode?: unknown; code?: unknown }
      if (typeof value.statusCode === 'number' && value.statusCode >= 400 && typeof value.code === 'string') return line
    } catch {
      // not JSON: CSV, text
    }
  }
  return null
}

/** The files in dir and their sizes: what a command that redirects its output wrote. */
function filesIn(dir: string): Map<string, number> {
  return new Map(
    readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => [e.name, statSync(path.join(dir, e.name)).size]),
  )
}

t.test("every README `sh` example works as written against a fresh `npm start`", async (t) => {
  const blocks = shBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'))
  t.ok(blocks.length > 0, 'the README has sh blocks')

  const storage = persistentStorageEnv(t, 'readme')
  // No ADMIN_API_KEY, so the first start prints one, as for a new user. Event-loop lag on a
  // loaded CI machine must not shed an example with 503.
  const serviceEnv = { ...storage, ADMIN_API_KEY: '', MAX_EVENT_LOOP_DELAY_MS: '0' }
  const service = await startService(serviceEnv)
  t.teardown(service.stop)

  // The user's shell: a directory of its own (files the examples write land here) that still
  // sees the project, a curl that exits non-zero on an HTTP error (printing the body), and
  // variables that carry from one command to the next.
  const home = mkdtempSync(path.join(tmpdir(), 'readme-'))
  t.teardown(() => rmSync(home, { recursive: true, force: true }))
  const cwd = path.join(home, 'project')
  mkdirSync(cwd)
  for (const entry of readdirSync(ROOT)) symlinkSync(path.join(ROOT, entry), path.join(cwd, entry))
  writeFileSync(path.join(home, '.curlrc'), 'fail-with-body\nmax-time = 120\n')
  const state = path.join(home, 'state.sh')
  writeFileSync(state, '')
  const env = { ...process.env, ...serviceEnv, CURL_HOME: home, PORT: String(service.port) }

  /** Ids answered by POSTs, by collection path: what a user pastes for `<id>` in `/collection/<id>`. */
  const createdIds = new Map<string, string>()
  let lastCreatedKey: string | null = null

  let n = 0
  for (const block of blocks) {
    for (const original of shellCommands(block)) {
      n++
      let command = original.replaceAll('localhost:3000', `127.0.0.1:${service.port}`)
      const label = `[${n}] ${original.length > 110 ? `${original.slice(0, 110)}...` : original}`

      // `export NAME=usk_...`: the user pastes the key shown to them.
      const exported = /^export\s+(\w+)=usk_(?:\.\.\.|…)/.exec(command)
      if (exported) {
        const value = exported[1] === 'ADMIN' ? service.adminKey : lastCreatedKey
        if (!value) {
          t.fail(`${label}: no key was shown before this line`)
          continue
        }
        command = command.replace(/usk_(?:\.\.\.|…)/, value)
      }
      // `/collection/<id>`: the id the POST to that collection answered.
      let missing = false
      command = command.replace(/(\/api\/[A-Za-z0-9/_-]+?)\/<id>/g, (_m, collection: string) => {
        const id = createdIds.get(collection)
        if (id === undefined) missing = true
        return `${collection}/${id ?? 'MISSING'}`
      })
      if (missing) {
        t.fail(`${label}: names an <id> that no earlier example created`)
        continue
      }

      const before = filesIn(cwd)
      const run = spawnSync('bash', ['-c', `set -o pipefail\n. "$STATE_FILE"\n${command}\nrc=$?\nexport -p > "$STATE_FILE"\nexit $rc`], {
        cwd,
        env: { ...env, STATE_FILE: state },
        encoding: 'utf8',
        timeout: 30_000,
        killSignal: 'SIGKILL',
      })
      const stdout = run.stdout ?? ''
      t.equal(run.status, 0, `${label}: succeeds${run.status === 0 ? '' : `\n${stdout}\n${run.stderr}`}`)

      const written = [...filesIn(cwd)].filter(([name, size]) => before.get(name) !== size).map(([name]) => name)
      const outputs = [stdout, ...written.map((name) => readFileSync(path.join(cwd, name), 'utf8'))]
      if (!/^export\s/.test(command)) {
        t.ok(outputs.some((o) => o.trim().length > 0), `${label}: returns something`)
      }
      for (const output of outputs) t.equal(errorBody(output), null, `${label}: no error answer`)

      // Remember what a user reads off the answer: a new key, a created resource's id.
      const method = /-X\s+([A-Z]+)/.exec(command)?.[1] ?? 'GET'
      const urlPath = /127\.0\.0\.1:\d+(\/[^\s'"?]*)/.exec(command)?.[1]
      try {
        const answer = JSON.parse(stdout) as { id?: unknown; key?: unknown }
        if (typeof answer.key === 'string' && answer.key.startsWith('usk_')) lastCreatedKey = answer.key
        if (method === 'POST' && urlPath && typeof answer.id === 'string') createdIds.set(urlPath, answer.id)
      } catch {
        // not a JSON answer
      }
    }
  }
  t.ok(n > 0, `ran ${n} commands`)
})
