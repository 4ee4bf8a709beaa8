/**
 * A background job that runs now and then: first after `firstAfterMs`, then every `intervalMs`,
 * and sooner when kicked. Runs never overlap (a tick while one runs is dropped, a kick while
 * one runs is remembered and runs right after it). Timers are unref'd, so a job never keeps the
 * process alive; `stop` cancels the timers and waits for the run in progress.
 */
export interface PeriodicJobOptions {
  run: () => Promise<unknown>
  intervalMs: number
  /** Delay of the first run after start (default 1000 ms: let the service finish starting). */
  firstAfterMs?: number
  /** A failed run is reported here; the job keeps its schedule. */
  onError: (err: unknown) => void
}

export interface PeriodicJob {
  /** Runs the job within `afterMs` (once, however often it is kicked before then). */
  kick(afterMs?: number): void
  /** The run in progress, if any (resolved when idle). */
  idle(): Promise<void>
  stop(): Promise<void>
}

export function startPeriodic(opts: PeriodicJobOptions): PeriodicJob {
  let running: Promise<void> | null = null
  let again = false
  let stopped = false
  let soon: NodeJS.Timeout | null = null

  const run = (remember = false): void => {
    if (stopped) return
    if (running) {
      again ||= remember
      return
    }
    running = opts
      .run()
      .then(() => undefined, opts.onError)
      .finally(() => {
        running = null
        if (again && !stopped) {
          again = false
          run()
        }
      })
  }

  const timer = setInterval(() => run(), opts.intervalMs)
  timer.unref()
  const first = setTimeout(() => run(), opts.firstAfterMs ?? 1000)
  first.unref()

  return {
    kick(afterMs = 0) {
      if (stopped || soon) return
      soon = setTimeout(() => {
        soon = null
        run(true)
      }, afterMs)
      soon.unref()
    },
    idle: async () => {
      while (running) await running
    },
    stop: async () => {
      stopped = true
      clearInterval(timer)
      clearTimeout(first)
      if (soon) clearTimeout(soon)
      while (running) await running
    },
  }
}
