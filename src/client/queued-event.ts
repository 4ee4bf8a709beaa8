/** One event waiting to be sent, already serialized as it goes over the wire and into the spool. */
export interface QueuedEvent {
  /** Order of `track()`, for flush(); `noSeq` for an event read back from the spool. */
  readonly seq: number
  readonly id: string
  readonly json: string
  /** Its share of a request body: the JSON plus a separator. */
  readonly bytes: number
}

export const noSeq = -1

export function queuedEvent(seq: number, id: string, json: string): QueuedEvent {
  return { seq, id, json, bytes: Buffer.byteLength(json) + 1 }
}
