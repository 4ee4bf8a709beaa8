import { defineConfig } from 'drizzle-kit'

// Only used by `npm run db:generate`; the service applies the generated SQL itself.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
})
