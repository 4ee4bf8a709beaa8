import underPressure, { TYPE_EVENT_LOOP_DELAY } from '@fastify/under-pressure'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { Errors } from '../errors.js'

/** How often under-pressure samples event-loop delay and memory (its default). */
const PRESSURE_SAMPLE_MS = 1000

/**
 * Sheds load with 503 OVERLOADED instead of queueing it when the process itself is the
 * bottleneck (event-loop delay or heap past the configured limits).
 *
 * Event-loop delay is sampled as the mean over each PRESSURE_SAMPLE_MS interval, so the
 * samples taken just after start still hold the seconds spent booting the embedded engine,
 * migrating and compiling every route's schemas: that is start-up, not load, and it used to
 * shed the first requests with 503. Until two intervals after ready, delay alone sheds nothing.
 */
export const loadShedding = fp<{ pressure: Config['pressure'] }>(async (app, { pressure }) => {
  let delayCountsFrom = Infinity
  app.addHook('onReady', async () => {
    delayCountsFrom = Date.now() + 2 * PRESSURE_SAMPLE_MS
  })
  await app.register(underPressure, {
    maxEventLoopDelay: pressure.maxEventLoopDelayMs,
    maxHeapUsedBytes: pressure.maxHeapUsedBytes,
    sampleInterval: PRESSURE_SAMPLE_MS,
    exposeStatusRoute: false,
    pressureHandler: async (_request, _reply, type) => {
      if (type === TYPE_EVENT_LOOP_DELAY && Date.now() < delayCountsFrom) return
      throw new Errors.underPressure()
    },
  })
})
