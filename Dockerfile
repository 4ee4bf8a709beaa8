# The usage service. Runs TypeScript directly with tsx (no build step to drift from the source).

# The dashboard page is the one built artefact: Vite and Chart.js are dev dependencies.
FROM node:20-bookworm-slim AS dashboard
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY web ./web
RUN npm run build:dashboard

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY tsconfig.json drizzle.config.ts ./
COPY src ./src
COPY bots ./bots
COPY migrations ./migrations
COPY --from=dashboard /build/dist/dashboard ./dist/dashboard
USER node
EXPOSE 3000
CMD ["node", "--import=tsx", "src/server.ts"]
