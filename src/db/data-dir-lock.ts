import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeSync } from 'node:fs'
import path from 'node:path'

/**
 * The embedded engine's data dir has one owner process. PGlite in two processes on one directory
 * does not fail: each sees only its own writes and one overwrites the other's files, so an
 * acknowledged event can be gone after a restart. The owner holds `service.lock` in the directory,
 * created with O_EXCL and holding its pid; a lock whose process is dead is stale and taken over.
 */
export const LOCK_FILE = 'service.lock'

export interface LockHolder {
  pid: number
  /** The holder's start time as the kernel counts it (Linux), so a reused pid is not mistaken for it. */
  startTicks: string | null
  startedAt: string
  command: string
  /** Where the holder's HTTP API answers, once it listens (`npm run reprice` calls it). */
  url?: string
}

/** Another live process owns the data dir: the caller must stop (exit non-zero with this message). */
export class DataDirLockedError extends Error {
  readonly dataDir: string
  readonly holder: LockHolder
  constructor(dataDir: string, holder: LockHolder) {
    const who =
      holder.pid === process.pid ? `already open in this process (pid ${holder.pid})` : `in use by another process (pid ${holder.pid}, ${holder.command}, since ${holder.startedAt})`
    super(
      `The embedded database in ${dataDir} is ${who}. ` +
        'Only one process may open it: stop that process first, or point DATA_DIR elsewhere, or use DATABASE_URL (PostgreSQL) to run several.',
    )
    this.name = 'DataDirLockedError'
    this.dataDir = dataDir
    this.holder = holder
  }
}

export interface DataDirLock {
  readonly file: string
  /** Adds facts to the lock file for other processes (the service's URL once it listens). */
  record(extra: Pick<LockHolder, 'url'>): void
  /** Removes the lock if it is still ours. Idempotent. */
  release(): void
}

/** Lock files this process holds: a second open of the same dir in one process is refused too. */
const held = new Set<string>()

/**
 * Takes the lock on `dataDir` (created if missing) or throws DataDirLockedError naming the live
 * holder. A crash (kill -9) leaves the file behind; the next start finds its pid dead and takes over.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true })
  const file = path.join(dataDir, LOCK_FILE)
  if (held.has(file)) throw new DataDirLockedError(dataDir, ownIdentity())
  const me = ownIdentity()
  for (let attempt = 0; ; attempt++) {
    if (tryCreate(file, me)) break
    if (attempt >= 40) throw new Error(`cannot take the lock ${file}: it keeps changing; is another process starting on ${dataDir}?`)
    const holder = readHolder(file)
    if (holder && isAlive(holder)) throw new DataDirLockedError(dataDir, holder)
    // An empty or unreadable lock is normally one being written right now (created, not yet
    // filled): only a few seconds later is it a crash's leftover.
    if (holder === null && ageMs(file) < 2000) {
      sleepSync(50)
      continue
    }
    takeOverStale(file, holder)
  }
  held.add(file)
  let current: LockHolder = me
  let released = false
  const onExit = (): void => lock.release()
  const lock: DataDirLock = {
    file,
    record(extra) {
      if (released) return
      current = { ...current, ...extra }
      // Replace atomically: a reader sees the old or the new content, never a half-written file.
      const temp = `${file}.${process.pid}.tmp`
      writeWhole(temp, current, 'w')
      renameSync(temp, file)
    },
    release() {
      if (released) return
      released = true
      held.delete(file)
      process.removeListener('exit', onExit)
      const holder = readHolder(file)
      if (holder && holder.pid === me.pid && holder.startTicks === me.startTicks) {
        try {
          unlinkSync(file)
        } catch {
          // Already gone: nothing to release.
        }
      }
    },
  }
  // process.exit() and uncaught exceptions skip close(): release on the way out anyway.
  process.on('exit', onExit)
  return lock
}

function tryCreate(file: string, me: LockHolder): boolean {
  try {
    writeWhole(file, me, 'wx')
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

function writeWhole(file: string, holder: LockHolder, flags: 'w' | 'wx'): void {
  const fd = openSync(file, flags, 0o644)
  try {
    writeSync(fd, `${JSON.stringify(holder)}\n`)
  } finally {
    closeSync(fd)
  }
}

/**
 * Removes a stale lock so that the next O_EXCL create can win. Two processes may find the same
 * stale lock at once: a takeover directory (mkdir is atomic) lets one of them remove it, and the
 * file is removed only while it still holds the dead holder, never a lock just taken by the other.
 */
function takeOverStale(file: string, stale: LockHolder | null): void {
  const guard = `${file}.takeover`
  try {
    mkdirSync(guard)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    // Someone else is taking over; a guard older than a few seconds is left from a crash.
    try {
      if (Date.now() - statSync(guard).mtimeMs > 5000) rmdirSync(guard)
    } catch {
      // Gone meanwhile.
    }
    sleepSync(50)
    return
  }
  try {
    const now = readHolder(file)
    const unchanged = now === null ? stale === null : stale !== null && now.pid === stale.pid && now.startTicks === stale.startTicks
    if (unchanged) {
      try {
        unlinkSync(file)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
  } finally {
    rmdirSync(guard)
  }
}

/** The holder written in the file; null when it is missing, empty or unreadable (a torn write). */
function readHolder(file: string): LockHolder | null {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return null
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockHolder>
    if (typeof parsed.pid !== 'number' || !Number.isInteger(parsed.pid) || parsed.pid <= 0) return null
    return {
      pid: parsed.pid,
      startTicks: typeof parsed.startTicks === 'string' ? parsed.startTicks : null,
      startedAt: typeof parsed.startedAt === 'string' ? parsed.startedAt : 'unknown',
      command: typeof parsed.command === 'string' ? parsed.command : 'unknown',
      ...(typeof parsed.url === 'string' ? { url: parsed.url } : {}),
    }
  } catch {
    return null
  }
}

/** The lock file of a live holder, or null (none, or stale). For CLIs deciding what to do. */
export function liveHolder(dataDir: string): LockHolder | null {
  const holder = readHolder(path.join(dataDir, LOCK_FILE))
  return holder && isAlive(holder) ? holder : null
}

function isAlive(holder: LockHolder): boolean {
  // Our own pid in a lock we do not hold: left by an earlier life of a container whose
  // entry point always gets the same pid.
  if (holder.pid === process.pid) return false
  try {
    process.kill(holder.pid, 0)
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const ticks = startTicksOf(holder.pid)
  return holder.startTicks === null || ticks === null || ticks === holder.startTicks
}

function ownIdentity(): LockHolder {
  return {
    pid: process.pid,
    startTicks: startTicksOf(process.pid),
    startedAt: new Date().toISOString(),
    command: process.argv.slice(1).map((arg) => path.basename(arg)).join(' ') || 'node',
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); null off Linux. */
function startTicksOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) is in parentheses and may contain spaces: count after its end.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[19] ?? null
  } catch {
    return null
  }
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs
  } catch {
    return Infinity
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}
