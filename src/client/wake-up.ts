/**
 * The send loop's sleeps and wake-ups: every timer is unref'd so the client never holds a
 * process open, and a wake-up that arrives between the loop's check and its next sleep is kept.
 */
export class WakeUp {
  readonly #isStopped: () => boolean
  /** Set by wake(); consumed by the next activity sleep so no wake-up is lost. */
  #activity = false
  #waiters = new Set<() => void>()
  #timer: NodeJS.Timeout | null = null

  /** `isStopped`: once true, every sleep returns at once and any wake-up ends it. */
  constructor(isStopped: () => boolean) {
    this.#isStopped = isStopped
  }

  wake(): void {
    // Work that arrives while the loop is between its check and its next sleep (e.g. track()
    // right after a flush() resolved) must not be lost: the next activity sleep returns at once.
    this.#activity = true
    const waiters = this.#waiters
    this.#waiters = new Set()
    for (const wake of waiters) wake()
  }

  /** Sleeps up to `ms`; woken early once stopped, and by new work when `onActivity` is set. */
  sleep(ms: number, onActivity: boolean): Promise<void> {
    if (this.#isStopped()) return Promise.resolve()
    if (onActivity && this.#activity) {
      this.#activity = false
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const done = (): void => {
        if (timer) clearTimeout(timer)
        this.#waiters.delete(wake)
        resolve()
      }
      const wake = (): void => {
        if (onActivity || this.#isStopped()) {
          if (onActivity) this.#activity = false
          done()
        } else this.#waiters.add(wake)
      }
      this.#waiters.add(wake)
      if (Number.isFinite(ms)) {
        timer = setTimeout(done, Math.max(0, ms))
        timer.unref()
      }
    })
  }

  /** Runs `onDue` once, `ms` from now; does nothing while a previous one is still pending. */
  armTimer(ms: number, onDue: () => void): void {
    if (this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      onDue()
    }, ms)
    this.#timer.unref()
  }

  clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer)
  }
}

/** Waits for `promise`, but at most `ms`, without holding the process open. */
export async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    promise,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
      timer.unref()
    }),
  ])
  if (timer) clearTimeout(timer)
}
