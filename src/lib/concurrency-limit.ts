export interface ConcurrencyLimitOptions {
  /** Holders at once. */
  maxConcurrent: number
  /** Callers that may wait for a turn; one more is refused at once. */
  maxQueued: number
  /** A waiting caller gives up after this long, ms. */
  maxQueueWaitMs: number
  /** The error a refused caller gets (thrown from acquire()). */
  refuse: () => Error
}

/**
 * A semaphore with a short, bounded queue: past it callers are refused immediately instead of
 * piling up (the route answers 503 with Retry-After). Used for heavy analytics, so no number of
 * concurrent reports can occupy every database connection or the embedded engine's only one.
 */
export class ConcurrencyLimit {
  private running = 0
  private readonly waiting: { grant: () => void; timer: NodeJS.Timeout }[] = []

  constructor(private readonly opts: ConcurrencyLimitOptions) {}

  /** Waits for a turn and returns the function that gives it back (call it exactly once). */
  async acquire(): Promise<() => void> {
    if (this.running < this.opts.maxConcurrent) {
      this.running++
      return this.releaser()
    }
    if (this.waiting.length >= this.opts.maxQueued) throw this.opts.refuse()
    await new Promise<void>((resolve, reject) => {
      const entry = {
        grant: () => {
          clearTimeout(entry.timer)
          resolve()
        },
        timer: setTimeout(() => {
          const at = this.waiting.indexOf(entry)
          if (at >= 0) this.waiting.splice(at, 1)
          reject(this.opts.refuse())
        }, this.opts.maxQueueWaitMs),
      }
      this.waiting.push(entry)
    })
    // The releaser that granted this turn passed its slot on: `running` is unchanged.
    return this.releaser()
  }

  /** Runs `task` in a turn. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    const release = await this.acquire()
    try {
      return await task()
    } finally {
      release()
    }
  }

  private releaser(): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.waiting.shift()
      if (next) next.grant()
      else this.running--
    }
  }
}
