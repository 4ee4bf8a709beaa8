import { mkdir, open, readdir, readFile, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { SpoolCorruptLineError, SpoolIoError, SpoolLockedError } from './errors.js'

export interface SpoolOptions {
  readonly dir: string
  /** A segment is closed (and becomes replayable on its own) past this size. */
  readonly maxSegmentBytes: number
  readonly onCorruptLine: (error: SpoolCorruptLineError) => void
}

/** One closed segment read back: its valid lines in write order. */
export interface SpoolSegment {
  readonly file: string
  readonly lines: string[]
}

const segmentPattern = /^seg-(\d{16})\.jsonl$/
const lockName = 'spool.lock'

/**
 * Append-only JSONL spool in numbered segment files (`seg-0000000000000001.jsonl`, ...).
 * Appends are one write plus one fdatasync per call, so a caller that appends a whole batch pays
 * for one disk flush. Segments are read back oldest first, and a segment file is deleted only
 * after the caller acknowledged every event in it, so a crash mid-replay replays it again
 * (the service dedupes by event id). A lock file keeps two live processes off one directory.
 */
export class Spool {
  readonly #dir: string
  readonly #maxSegmentBytes: number
  readonly #onCorruptLine: (error: SpoolCorruptLineError) => void
  /** Closed segments waiting for replay, oldest first (numbers). */
  readonly #closed: number[]
  #nextNumber: number
  #active: { number: number; handle: FileHandle; bytes: number } | null = null
  /** Every file operation runs through this chain, so appends, rotations and reads never interleave. */
  #chain: Promise<unknown> = Promise.resolve()
  #closedForGood = false

  private constructor(options: SpoolOptions, existing: number[]) {
    this.#dir = options.dir
    this.#maxSegmentBytes = options.maxSegmentBytes
    this.#onCorruptLine = options.onCorruptLine
    this.#closed = existing
    this.#nextNumber = (existing.at(-1) ?? 0) + 1
  }

  static async open(options: SpoolOptions): Promise<Spool> {
    try {
      await mkdir(options.dir, { recursive: true })
    } catch (cause) {
      throw new SpoolIoError(`cannot create spool directory ${options.dir}`, { cause })
    }
    await acquireLock(options.dir)
    let names: string[]
    try {
      names = await readdir(options.dir)
    } catch (cause) {
      throw new SpoolIoError(`cannot list spool directory ${options.dir}`, { cause })
    }
    const existing = names
      .map((name) => segmentPattern.exec(name)?.[1])
      .filter((digits): digits is string => digits !== undefined)
      .map(Number)
      .sort((a, b) => a - b)
    return new Spool(options, existing)
  }

  /** True when some segment (closed or active) may hold events not yet acknowledged. */
  get hasBacklog(): boolean {
    return this.#closed.length > 0 || (this.#active !== null && this.#active.bytes > 0)
  }

  /** Appends serialized events as JSONL and fsyncs before resolving. */
  append(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return Promise.resolve()
    return this.#serialize(async () => {
      if (this.#closedForGood) throw new SpoolIoError('spool is closed')
      const active = await this.#activeSegment()
      const chunk = `${lines.join('\n')}\n`
      try {
        await active.handle.write(chunk)
        await active.handle.datasync()
      } catch (cause) {
        throw new SpoolIoError(`cannot write spool segment ${this.#fileName(active.number)}`, { cause })
      }
      active.bytes += Buffer.byteLength(chunk)
      if (active.bytes >= this.#maxSegmentBytes) await this.#rotate()
    })
  }

  /**
   * Reads the oldest segment for replay. When only the active segment has events, it is closed
   * first, so new appends go to a fresh segment behind it. Corrupt lines are reported and skipped.
   */
  takeOldest(): Promise<SpoolSegment | null> {
    return this.#serialize(async () => {
      if (this.#closed.length === 0 && this.#active !== null && this.#active.bytes > 0) await this.#rotate()
      const number = this.#closed[0]
      if (number === undefined) return null
      const file = this.#fileName(number)
      let content: string
      try {
        content = await readFile(join(this.#dir, file), 'utf8')
      } catch (cause) {
        if (isErrno(cause, 'ENOENT')) {
          this.#closed.shift()
          return { file, lines: [] }
        }
        throw new SpoolIoError(`cannot read spool segment ${file}`, { cause })
      }
      return { file, lines: this.#validLines(file, content) }
    })
  }

  /** Deletes a segment whose events were all acknowledged. */
  remove(file: string): Promise<void> {
    return this.#serialize(async () => {
      const match = segmentPattern.exec(file)
      const number = match ? Number(match[1]) : NaN
      const index = this.#closed.indexOf(number)
      if (index >= 0) this.#closed.splice(index, 1)
      try {
        await unlink(join(this.#dir, file))
      } catch (cause) {
        if (!isErrno(cause, 'ENOENT')) throw new SpoolIoError(`cannot delete spool segment ${file}`, { cause })
      }
    })
  }

  async close(): Promise<void> {
    await this.#serialize(async () => {
      this.#closedForGood = true
      if (this.#active) {
        const { handle, bytes, number } = this.#active
        this.#active = null
        await handle.close().catch(() => undefined)
        if (bytes === 0) await unlink(join(this.#dir, this.#fileName(number))).catch(() => undefined)
      }
      await unlink(join(this.#dir, lockName)).catch(() => undefined)
    }).catch(() => undefined)
  }

  #validLines(file: string, content: string): string[] {
    const lines = content.split('\n')
    const valid: string[] = []
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]
      if (line === '' && i === lines.length - 1) break
      const problem = lineProblem(line)
      if (problem === null) valid.push(line)
      else {
        const torn = i === lines.length - 1 ? ' (torn write: no trailing newline)' : ''
        this.#onCorruptLine(new SpoolCorruptLineError(file, i + 1, `${problem}${torn}; line skipped`))
      }
    }
    return valid
  }

  async #activeSegment(): Promise<{ number: number; handle: FileHandle; bytes: number }> {
    if (this.#active) return this.#active
    const number = this.#nextNumber++
    const path = join(this.#dir, this.#fileName(number))
    try {
      const handle = await open(path, 'a')
      await syncDirectory(this.#dir)
      this.#active = { number, handle, bytes: 0 }
      return this.#active
    } catch (cause) {
      throw new SpoolIoError(`cannot create spool segment ${path}`, { cause })
    }
  }

  async #rotate(): Promise<void> {
    const active = this.#active
    if (!active) return
    this.#active = null
    await active.handle.close().catch(() => undefined)
    if (active.bytes > 0) this.#closed.push(active.number)
  }

  #fileName(number: number): string {
    return `seg-${String(number).padStart(16, '0')}.jsonl`
  }

  #serialize<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#chain.then(operation, operation)
    this.#chain = result.catch(() => undefined)
    return result
  }
}

function lineProblem(line: string): string | null {
  if (line.trim() === '') return 'empty line'
  let parsed: unknown
  try {
    parsed = JSON.parse(line)
  } catch {
    return 'not valid JSON'
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'not a JSON object'
  const record = parsed as Record<string, unknown>
  if (typeof record.id !== 'string' || typeof record.botId !== 'string') return 'not a usage event (no id or botId)'
  return null
}

async function acquireLock(dir: string): Promise<void> {
  const path = join(dir, lockName)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, String(process.pid), { flag: 'wx' })
      return
    } catch (cause) {
      if (!isErrno(cause, 'EEXIST')) throw new SpoolIoError(`cannot create spool lock ${path}`, { cause })
    }
    const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim())
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      throw new SpoolLockedError(`spool directory ${dir} is in use by process ${holder}`)
    }
    // The holder died without releasing it (crash, SIGKILL): take over.
    await unlink(path).catch(() => undefined)
  }
  throw new SpoolLockedError(`could not lock spool directory ${dir}`)
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return isErrno(error, 'EPERM')
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Makes the new file's directory entry durable; not supported everywhere (Windows), so best effort.
  let handle: FileHandle | undefined
  try {
    handle = await open(dir, 'r')
    await handle.sync()
  } catch {
    // best effort
  } finally {
    await handle?.close().catch(() => undefined)
  }
}

function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === code
}
