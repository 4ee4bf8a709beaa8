import { spawn, type ChildProcess } from 'node:child_process'
import { ADMIN_KEY } from './app.js'

export interface ServiceProcess {
  readonly child: ChildProcess
  readonly pid: number
  /** Resolves with the listening URL; rejects when the process exits first (with its output). */
  readonly url: Promise<string>
  /** Exit code (or the signal's name) once the process ended. */
  readonly exited: Promise<number | string>
  output(): string
  stop(signal?: NodeJS.Signals): Promise<number | string>
}

/** Runs a script of this repository (`src/server.ts`, `scripts/reprice.ts`, …) the way npm does. */
export function runScript(script: string, args: string[], env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, ['--import=tsx', script, ...args], {
    env: {
      ...process.env,
      DATABASE_URL: '',
      ADMIN_API_KEY: ADMIN_KEY,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      // The service's load shedding reacts to this shared machine, not to the test.
      MAX_EVENT_LOOP_DELAY_MS: '0',
      MAX_HEAP_USED_BYTES: '0',
      INGEST_MAX_QUEUE_DELAY_MS: '60000',
      INGEST_MAX_LOOP_DELAY_MS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  const url = new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString()
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m) resolve(m[1])
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
    void exited.then((code) => reject(new Error(`${script} exited with ${code} before listening:\n${out}`)))
  })
  url.catch(() => undefined)
  return {
    child,
    pid: child.pid ?? -1,
    url,
    exited,
    output: () => out,
    stop: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

/** `npm start` as a child process on `env` (DATA_DIR or DATABASE_URL + DATABASE_SCHEMA). */
export function startService(env: Record<string, string>): ServiceProcess {
  return runScript('src/server.ts', [], env)
}
