import type { UsageClientError } from './errors.js'
import { noSeq, queuedEvent, type QueuedEvent } from './queued-event.js'
import { asClientError } from './reporter.js'
import type { Spool } from './spool.js'

/**
 * Reads spooled events back, one segment at a time, oldest first. A segment file is deleted only
 * once every event in it was acknowledged, so a crash mid-replay re-sends (the service dedupes by id).
 */
export class SpoolReplay {
  readonly #spool: Spool
  readonly #report: (error: UsageClientError) => void
  #segment: { readonly file: string; readonly events: QueuedEvent[]; offset: number } | null = null

  constructor(spool: Spool, report: (error: UsageClientError) => void) {
    this.#spool = spool
    this.#report = report
  }

  /** The segment being replayed and the index of its first unacknowledged event; null when nothing is spooled. */
  async pending(): Promise<{ readonly events: readonly QueuedEvent[]; readonly offset: number } | null> {
    for (;;) {
      if (!this.#segment && this.#spool.hasBacklog) {
        try {
          const segment = await this.#spool.takeOldest()
          if (segment) {
            this.#segment = {
              file: segment.file,
              offset: 0,
              events: segment.lines.map((json) => queuedEvent(noSeq, eventId(json), json)),
            }
          }
        } catch (error) {
          this.#report(asClientError(error, 'cannot read the spool'))
        }
      }
      const segment = this.#segment
      if (!segment) return null
      if (segment.offset < segment.events.length) return segment
      await this.acknowledge(0)
    }
  }

  /** The next `count` events of the segment were delivered; a fully delivered segment is deleted. */
  async acknowledge(count: number): Promise<void> {
    const segment = this.#segment
    if (!segment) return
    segment.offset += count
    if (segment.offset < segment.events.length) return
    this.#segment = null
    try {
      await this.#spool.remove(segment.file)
    } catch (error) {
      this.#report(asClientError(error, 'cannot delete a replayed spool segment'))
    }
  }
}

function eventId(json: string): string {
  const match = /"id":"([^"]*)"/.exec(json)
  return match ? match[1] : ''
}
