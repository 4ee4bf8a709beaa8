/**
 * The exit hooks of open clients, behind one `beforeExit` listener: a program that opens more
 * than ten clients gets no MaxListenersExceededWarning. Each client leaves the set at close().
 */
const closeOnExit = new Set<() => void>()

export function watchExit(hook: () => void): void {
  if (closeOnExit.size === 0 && !process.listeners('beforeExit').includes(runExitHooks)) process.on('beforeExit', runExitHooks)
  closeOnExit.add(hook)
}

export function unwatchExit(hook: () => void): void {
  closeOnExit.delete(hook)
}

function runExitHooks(): void {
  for (const hook of [...closeOnExit]) hook()
}
