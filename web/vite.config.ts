import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

// The dashboard page, served by the service at /dashboard from dist/dashboard (built by npm install).
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // One small module script and one stylesheet: no inline script (the CSP forbids it).
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
  },
})
