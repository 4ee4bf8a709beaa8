/** How often the monitor's timer asks to run, ms. */
const TICK_MS = 10

/** How long a late tick keeps counting, ms: sockets that waited through a long turn are read just after it. */
const MEMORY_MS = 100

/**
 * Event-loop delay as a request sees it, at 10 ms resolution: how long the loop has been busy
 * since its timer last ran (a turn that is reading hundreds of sockets shows here while it is
 * still running), or the lateness of a recent tick, whichever is larger. Requests read late in a
 * long turn waited in their socket for all of it, before any handler could see them; averaged
 * over a second (as @fastify/under-pressure samples), a 200 ms turn is invisible.
 */
export class LoopDelayMonitor {
  private lastTick = performance.now()
  private recentLate = 0
  private recentLateAt = 0
  private timer: NodeJS.Timeout | null = null

  start(): void {
    if (this.timer) return
    this.lastTick = performance.now()
    this.timer = setInterval(() => this.tick(performance.now()), TICK_MS)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  /** The timer ran at `now` (exposed for tests, which drive it with their own clock). */
  tick(now: number): void {
    const late = now - this.lastTick - TICK_MS
    if (late >= this.recent(now)) {
      this.recentLate = late
      this.recentLateAt = now
    }
    this.lastTick = now
  }

  /** The delay a request arriving at `now` has likely met, ms (meaningful once started, or driven by tick()). */
  delayMs(now = performance.now()): number {
    return Math.max(0, now - this.lastTick - TICK_MS, this.recent(now))
  }

  private recent(now: number): number {
    return now - this.recentLateAt <= MEMORY_MS ? this.recentLate : 0
  }
}
