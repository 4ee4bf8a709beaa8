import t from 'tap'
import { startPeriodic } from '../../src/lib/periodic.js'

/** A run the test finishes by hand. */
function gate() {
  let open!: () => void
  const done = new Promise<void>((resolve) => (open = resolve))
  return { done, open }
}

const waitFor = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2))
}

t.test('runs never overlap; a kick during a run runs once more right after it', async (t) => {
  let active = 0
  let maxActive = 0
  let runs = 0
  const gates: ReturnType<typeof gate>[] = []
  const job = startPeriodic({
    intervalMs: 60_000,
    firstAfterMs: 60_000,
    onError: (err) => t.fail(String(err)),
    run: async () => {
      active++
      maxActive = Math.max(maxActive, active)
      runs++
      const g = gate()
      gates.push(g)
      await g.done
      active--
    },
  })
  job.kick()
  await waitFor(() => runs === 1)
  job.kick()
  job.kick()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(runs, 1, 'kicks while a run is in progress wait for it')
  gates[0].open()
  await waitFor(() => runs === 2)
  gates[1].open()
  await job.idle()
  t.equal(runs, 2, 'several kicks during one run make one more run')
  t.equal(maxActive, 1)
  await job.stop()
})

t.test('a failed run is reported and the job keeps running', async (t) => {
  const errors: unknown[] = []
  let runs = 0
  const job = startPeriodic({
    intervalMs: 60_000,
    firstAfterMs: 60_000,
    onError: (err) => errors.push(err),
    run: async () => {
      runs++
      if (runs === 1) throw new Error('boom')
    },
  })
  job.kick()
  await waitFor(() => errors.length === 1)
  job.kick()
  await waitFor(() => runs === 2)
  await job.idle()
  t.equal(errors.length, 1)
  t.match(String(errors[0]), /boom/)
  await job.stop()
})

t.test('stop waits for the run in progress and nothing runs after it', async (t) => {
  let runs = 0
  const g = gate()
  const job = startPeriodic({
    intervalMs: 5,
    firstAfterMs: 0,
    onError: (err) => t.fail(String(err)),
    run: async () => {
      runs++
      await g.done
    },
  })
  await waitFor(() => runs === 1)
  let stopped = false
  const stopping = job.stop().then(() => (stopped = true))
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.notOk(stopped, 'stop waits for the run')
  g.open()
  await stopping
  job.kick()
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.equal(runs, 1, 'no run after stop, neither by interval nor by kick')
})
